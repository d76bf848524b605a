/* Flows shared by the integration suites: worker environment, CLI runs,
 * and the checks of an archived space. See it_util.h for the basics. */
#include "tests/integration/it_flow.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/manifest.h"

struct it_dir_stats it_stats_of(const char *dir)
{
    struct it_dir_stats s = { 0, 0 };
    char cmd[1024];
    unsigned long long n;
    FILE *p;
    snprintf(cmd, sizeof(cmd), "find '%s' -type f -printf '%%s\\n'", dir);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    while (fscanf(p, "%llu", &n) == 1) {
        s.files++;
        s.bytes += n;
    }
    pclose(p);
    return s;
}

void it_env_init(struct it_env *e, const char *store_url, const char *tag,
                 const char *endpoint)
{
    snprintf(e->store, sizeof(e->store), "SILA_STORE=%s", store_url);
    snprintf(e->redis, sizeof(e->redis), "REDIS_URL=redis://127.0.0.1:%s/0",
             it_env("WK_TEST_REDIS_PORT"));
    snprintf(e->prefix, sizeof(e->prefix),
             "SILA_KEY_PREFIX=test:%d:%s:", (int)getpid(), tag);
    snprintf(e->endpoint, sizeof(e->endpoint), "AWS_ENDPOINT_URL_S3=%s",
             endpoint ? endpoint : it_env("WK_TEST_S3_ENDPOINT"));
    int n = 0;
    e->vars[n++] = e->store;
    e->vars[n++] = e->redis;
    e->vars[n++] = e->prefix;
    e->vars[n++] = e->endpoint;
    e->vars[n++] = "SILA_PART_SIZE=5MiB";
    e->vars[n++] = "SILA_QUEUE_BLOCK_MS=200";
    e->vars[n++] = "SILA_S3_RETRIES=2";
    /* moto does not check signatures: distinctive secrets let the tests
     * prove that none of them leaks into logs or status */
    e->vars[n++] = "AWS_SECRET_ACCESS_KEY=" IT_SECRET;
    e->vars[n++] = "AWS_SESSION_TOKEN=" IT_TOKEN;
    e->vars[n] = NULL;
}

const char *it_prefix_of(const struct it_env *e)
{
    return strchr(e->prefix, '=') + 1;
}

pid_t it_start_worker(const struct it_env *e, const char *log)
{
    const char *args[] = { "worker", NULL };
    return it_spawn(args, e->vars, log);
}

int it_cli(const struct it_env *e, const char *args, char *job_id, size_t len,
           const char *out_path)
{
    char cmd[4096];
    int n = 0;
    FILE *f;
    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "env");
    for (int i = 0; e->vars[i]; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", e->vars[i]);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s' %s > '%s' 2>&1",
             it_env("WK_BIN"), args, out_path);
    int st = it_sh("%s", cmd);
    f = fopen(out_path, "r");
    ck_assert_ptr_nonnull(f);
    job_id[0] = '\0';
    if (fgets(job_id, (int)len, f))
        job_id[strcspn(job_id, "\n")] = '\0';
    fclose(f);
    return st;
}

void it_read_mf(struct store *st, const char *space_id, struct mf *m)
{
    char key[256];
    size_t len;
    struct wk_err err;
    char *text;

    snprintf(key, sizeof(key), "metadata/%s.json", space_id);
    text = it_get_text(st, key, &len);
    wk_err_clear(&err);
    ck_assert_msg(mf_parse(text, len, m, &err) == WK_OK, "%s", err.msg);
    free(text);
}

void it_assert_no_secrets(const struct it_env *e, const char *tmp,
                          const char *const *extra)
{
    char pats[2048];
    size_t n;

    ck_assert_int_eq(
        it_sh("p=%s; redis-cli -p $p --scan --pattern '%s*' | "
              "while read -r k; do case $(redis-cli -p $p TYPE \"$k\") in "
              "hash) redis-cli -p $p HGETALL \"$k\";; "
              "stream) redis-cli -p $p XRANGE \"$k\" - +;; "
              "string) redis-cli -p $p GET \"$k\";; "
              "zset) redis-cli -p $p ZRANGE \"$k\" 0 -1;; esac; done "
              "> '%s/redis-dump.txt' && test -s '%s/redis-dump.txt'",
              it_env("WK_TEST_REDIS_PORT"), it_prefix_of(e), tmp, tmp),
        0);
    n = (size_t)snprintf(pats, sizeof(pats), "-e '%s' -e '%s'", IT_SECRET,
                         IT_TOKEN);
    for (size_t i = 0; extra && extra[i]; i++) {
        n += (size_t)snprintf(pats + n, sizeof(pats) - n, " -e '%s'", extra[i]);
        ck_assert_uint_lt(n, sizeof(pats));
    }
    ck_assert_msg(
        it_sh("! grep -r -l -i %s '%s' --exclude-dir=keys", pats, tmp) == 0,
        "a secret was found under %s (grep -r -l -i %s)", tmp, pats);
}

void it_verify_archived(struct store *st, const char *space_id,
                        const char *src_dir, const char *tmp)
{
    char key[256], zip[600], hex[65];
    unsigned long long zsize;
    struct it_dir_stats ds = it_stats_of(src_dir);
    struct mf m;
    struct wk_err err;
    size_t len;
    char *text;

    snprintf(key, sizeof(key), "metadata/%s.json", space_id);
    text = it_get_text(st, key, &len);
    wk_err_clear(&err);
    ck_assert_msg(mf_parse(text, len, &m, &err) == WK_OK, "%s", err.msg);
    free(text);
    ck_assert_str_eq(m.version, "1.0");
    ck_assert_str_eq(m.space_id, space_id);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_str_eq(m.compression, "deflate");
    ck_assert_uint_eq(m.file_count, ds.files);
    ck_assert_uint_eq(m.uncompressed_size, ds.bytes);
    ck_assert(m.created_at > 0 && m.created_at <= m.archived_at);
    snprintf(key, sizeof(key), "archived/%s/workspace-", space_id);
    ck_assert_msg(strncmp(m.archive_key, key, strlen(key)) == 0, "%s",
                  m.archive_key);

    snprintf(zip, sizeof(zip), "%s/archive.zip", tmp);
    it_download(st, m.archive_key, zip);
    it_file_sha256(zip, hex, &zsize);
    ck_assert_str_eq(hex, m.checksum);
    ck_assert_uint_eq(zsize, m.size);
    ck_assert_int_eq(it_sh("unzip -tq '%s' >/dev/null", zip), 0);
    ck_assert_int_eq(it_sh("python3 '%s/tests/verify_zip.py' '%s' '%s' "
                           ">/dev/null",
                           it_env("WK_SRCDIR"), zip, src_dir),
                     0);
    snprintf(key, sizeof(key), "active/%s/", space_id);
    ck_assert_uint_eq(it_count(st, key), 0);
}

void it_env_add(struct it_env *e, const char *kv)
{
    int n = 0;
    while (e->vars[n])
        n++;
    ck_assert_int_lt(n + 1, (int)(sizeof(e->vars) / sizeof(e->vars[0])));
    e->vars[n] = kv;
    e->vars[n + 1] = NULL;
}
