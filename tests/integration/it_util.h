/*
 * it_util: helpers for integration tests against the real servers that
 * tests/integration/run.sh starts (WK_TEST_REDIS_PORT, WK_TEST_S3_ENDPOINT,
 * WK_TEST_BUCKET, WK_BIN, WK_SRCDIR, WK_TEST_TMP). Child processes started
 * here are stopped by PID. Failures abort the current test (ck_abort).
 */
#ifndef WK_TESTS_INTEGRATION_IT_UTIL_H
#define WK_TESTS_INTEGRATION_IT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "storage/store.h"

/* An environment variable that run.sh must have set. */
const char *it_env(const char *name);

/* A fresh directory under WK_TEST_TMP, into buf. */
void it_tmpdir(const char *tag, char *buf, size_t len);

/* Run a shell command; returns its exit status (-1 if it did not exit). */
int it_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Start WK_BIN with args; extra_env is NULL-terminated "K=V" strings added
 * to the environment; stdout+stderr go to log_path. */
pid_t it_spawn(const char *const *args, const char *const *extra_env,
               const char *log_path);
/* SIGTERM, then SIGKILL after 5 s; reaps; returns the exit status. */
int it_stop(pid_t pid);

/* The S3 store on the test bucket (endpoint optional: NULL = the default). */
struct store *it_s3_store(const char *endpoint);
/* A file:// store rooted at dir. */
struct store *it_fs_store(const char *dir);

/* Generate a space with tests/gen_space.py into dir (extra args appended). */
void it_gen_space(const char *dir, const char *space_id, int seed,
                  const char *extra_args);
/* Upload dir to prefix in the test bucket (tests/upload_dir.py, boto3). */
void it_upload_dir(const char *dir, const char *prefix, const char *endpoint);

/* A random 32-hex space id. */
void it_space_id(char out[33]);

/* Count objects under prefix. */
size_t it_count(struct store *st, const char *prefix);

/* The state its manifest gives a space ("active", "archiving",
 * "archived", "restoring"), or "none" without a manifest. */
const char *it_mf_state(struct store *st, const char *space_id);

/* Read a small object into a NUL-terminated heap string (free()). */
char *it_get_text(struct store *st, const char *key, size_t *len);

/* Download key into a local file. */
void it_download(struct store *st, const char *key, const char *path);

/* SHA-256 hex of a local file. */
void it_file_sha256(const char *path, char hex[65], unsigned long long *size);

/* Lines of file matching the extended regex pattern (grep -cE; 0 when
 * the file is missing). */
int it_count_in(const char *pattern, const char *file);
/* Wait up to secs for a line matching pattern in file. */
bool it_wait_in_log(const char *pattern, const char *file, int secs);

/* Redis: run a command (redisCommand format) on the test server and return
 * the reply as text ("(nil)", integer as decimal, string, or "ERR ...");
 * arrays are not supported. Result is static storage. */
const char *it_redis(const char *fmt, ...);

/* Wait until the status hash <prefix>job:<id> has state succeeded or
 * failed (or timeout_s passes); returns the state ("timeout" if none). */
const char *it_wait_job(const char *prefix, const char *id, int timeout_s);

/* HGET of a status field into a static buffer ("" when missing). */
const char *it_job_field(const char *prefix, const char *id, const char *field);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int it_free_port(void);

/* Start tests/fault_proxy.py in front of target ("127.0.0.1:9000"),
 * controlled by the file ctl ("up"/"down"); returns its pid once ready. */
pid_t it_start_proxy(int port, const char *target, const char *ctl);

/* Write a mode word into a control file. */
void it_write_file(const char *path, const char *text);
/* Sleep for ms milliseconds. */
void it_sleep_ms(unsigned ms);

/* GET url into path with curl; the HTTP status (0: no answer). */
int it_http_get(const char *url, const char *path);
/* The value of the exposition line "name{labels} value" in the file at
 * path (a /metrics page), or -1 when there is none. */
double it_metric(const char *path, const char *series);

/* Start any program (argv[0] looked up in PATH), output to log_path. */
pid_t it_spawn_prog(const char *const *argv, const char *log_path);

#endif
