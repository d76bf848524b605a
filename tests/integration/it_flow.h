/*
 * it_flow: what the flow suites share: the environment of a worker or CLI
 * process for one test (fresh Redis key prefix, test store, distinctive
 * fake secrets), running CLI commands, and the checks of an archived space.
 */
#ifndef WK_TESTS_INTEGRATION_IT_FLOW_H
#define WK_TESTS_INTEGRATION_IT_FLOW_H

#include <stddef.h>
#include <sys/types.h>

#include "tests/integration/it_util.h"

/* moto does not check signatures: distinctive secrets let the tests prove
 * that none of them leaks into logs or status */
#define IT_SECRET "itSecretKq93Zx"
#define IT_TOKEN  "itTokenWq71Vb"

struct it_dir_stats {
    unsigned long long files, bytes;
};

/* Files and bytes under dir. */
struct it_dir_stats it_stats_of(const char *dir);

/* Environment of a worker or CLI process for one test. */
struct it_env {
    char store[600], redis[128], prefix[128], endpoint[256];
    const char *vars[16];
};

/* store_url: SILA_STORE; tag: part of the Redis key prefix; endpoint: S3
 * endpoint (NULL = the test server). */
void it_env_init(struct it_env *e, const char *store_url, const char *tag,
                 const char *endpoint);
/* The Redis key prefix ("test:<pid>:<tag>:"). */
const char *it_prefix_of(const struct it_env *e);
pid_t it_start_worker(const struct it_env *e, const char *log);

/* Add "K=V" (borrowed: must outlive e) to the environment. */
void it_env_add(struct it_env *e, const char *kv);

/* Run "sila-archiver <args>" in e's environment, output to out_path;
 * returns the exit status; the first output line goes to job_id. */
int it_cli(const struct it_env *e, const char *args, char *job_id, size_t len,
           const char *out_path);

/* The manifest of space_id, parsed (the test fails when it cannot be). */
struct mf;
void it_read_mf(struct store *st, const char *space_id, struct mf *m);

/* Nothing the run produced holds a secret: every file under tmp (logs,
 * command output; except a "keys" folder) and a dump of every Redis key
 * under e's prefix are searched for IT_SECRET, IT_TOKEN and each of the
 * NULL-terminated extra strings (may be NULL). */
void it_assert_no_secrets(const struct it_env *e, const char *tmp,
                          const char *const *extra);

/* Everything the archive issue promises about an archived space. */
void it_verify_archived(struct store *st, const char *space_id,
                        const char *src_dir, const char *tmp);

#endif
