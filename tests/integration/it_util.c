#include "tests/integration/it_util.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobs/manifest.h"
#include "storage/store_hash.h"

extern char **environ;

const char *it_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        ck_abort_msg("%s is not set: run through tests/integration/run.sh",
                     name);
    return v;
}

void it_tmpdir(const char *tag, char *buf, size_t len)
{
    static unsigned seq;
    snprintf(buf, len, "%s/%s-%d-%u", it_env("WK_TEST_TMP"), tag, (int)getpid(),
             seq++);
    ck_assert_int_eq(it_sh("rm -rf '%s' && mkdir -p '%s'", buf, buf), 0);
}

int it_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    int st;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

pid_t it_spawn(const char *const *args, const char *const *extra_env,
               const char *log_path)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const char *argv[32];
        int n = 0, fd;
        argv[n++] = it_env("WK_BIN");
        for (int i = 0; args[i] && n < 31; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        for (int i = 0; extra_env && extra_env[i]; i++) {
            char kv[1024];
            char *eq;
            snprintf(kv, sizeof(kv), "%s", extra_env[i]);
            eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                setenv(kv, eq + 1, 1);
            }
        }
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

int it_stop(pid_t pid)
{
    int st = 0;
    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        it_sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

struct store *it_s3_store(const char *endpoint)
{
    struct store_opts o;
    struct store *st = NULL;
    struct wk_err err;
    char url[256];

    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    snprintf(o.endpoint, sizeof(o.endpoint), "%s",
             endpoint ? endpoint : it_env("WK_TEST_S3_ENDPOINT"));
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    ck_assert_msg(store_open_url(url, &o, &st, &err) == WK_OK, "%s", err.msg);
    return st;
}

struct store *it_fs_store(const char *dir)
{
    struct store *st = NULL;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_msg(store_fs_new(dir, &st, &err) == WK_OK, "%s", err.msg);
    return st;
}

void it_gen_space(const char *dir, const char *space_id, int seed,
                  const char *extra_args)
{
    ck_assert_int_eq(it_sh("python3 '%s/tests/gen_space.py' --out '%s' "
                           "--space-id %s --seed %d %s >/dev/null",
                           it_env("WK_SRCDIR"), dir, space_id, seed,
                           extra_args ? extra_args : ""),
                     0);
}

void it_upload_dir(const char *dir, const char *prefix, const char *endpoint)
{
    ck_assert_int_eq(it_sh("python3 '%s/tests/upload_dir.py' '%s' '%s' '%s' "
                           "--endpoint '%s' >/dev/null",
                           it_env("WK_SRCDIR"), dir, it_env("WK_TEST_BUCKET"),
                           prefix,
                           endpoint ? endpoint : it_env("WK_TEST_S3_ENDPOINT")),
                     0);
}

void it_space_id(char out[33])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[16];
    int fd = open("/dev/urandom", O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, raw, 16), 16);
    close(fd);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[32] = '\0';
}

static enum wk_code count_cb(const struct store_entry *e, void *ud,
                             struct wk_err *err)
{
    (void)e;
    (void)err;
    (*(size_t *)ud)++;
    return WK_OK;
}

size_t it_count(struct store *st, const char *prefix)
{
    size_t n = 0;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_msg(store_list(st, prefix, NULL, count_cb, &n, &err) == WK_OK,
                  "%s", err.msg);
    return n;
}

const char *it_mf_state(struct store *st, const char *space_id)
{
    char key[200];
    struct mf m;
    struct wk_buf b;
    struct wk_err err;
    enum wk_code rc;

    mf_key(space_id, key, sizeof(key));
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&err);
    rc = store_get_all(st, key, &b, &err);
    if (rc == WK_E_NOTFOUND) {
        wk_buf_release(&b);
        return "none";
    }
    ck_assert_msg(rc == WK_OK, "get '%s': %s", key, err.msg);
    ck_assert_msg(mf_parse(b.data, b.len, &m, &err) == WK_OK, "%s", err.msg);
    wk_buf_release(&b);
    return mf_state_name(m.state);
}

char *it_get_text(struct store *st, const char *key, size_t *len)
{
    struct wk_buf b;
    struct wk_err err;
    wk_buf_init(&b, 16u << 20);
    wk_err_clear(&err);
    ck_assert_msg(store_get_all(st, key, &b, &err) == WK_OK, "get '%s': %s",
                  key, err.msg);
    return wk_buf_detach(&b, len);
}

struct dl {
    FILE *f;
};

static enum wk_code dl_sink(const void *p, size_t n, void *ud,
                            struct wk_err *err)
{
    struct dl *d = ud;
    if (fwrite(p, 1, n, d->f) != n)
        return wk_err_set(err, WK_E_IO, "write failed");
    return WK_OK;
}

void it_download(struct store *st, const char *key, const char *path)
{
    struct dl d;
    struct wk_err err;
    d.f = fopen(path, "wb");
    ck_assert_ptr_nonnull(d.f);
    wk_err_clear(&err);
    ck_assert_msg(store_get(st, key, 0, UINT64_MAX, dl_sink, &d, &err) == WK_OK,
                  "download '%s': %s", key, err.msg);
    ck_assert_int_eq(fclose(d.f), 0);
}

void it_file_sha256(const char *path, char hex[65], unsigned long long *size)
{
    struct store_sha256 *h = NULL;
    unsigned char buf[65536];
    size_t n;
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(store_sha256_new(&h, NULL), WK_OK);
    *size = 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        store_sha256_update(h, buf, n);
        *size += n;
    }
    fclose(f);
    store_sha256_final_hex(h, hex);
    store_sha256_free(h);
}

static redisContext *redis_ctx(void)
{
    static redisContext *c;
    static pid_t owner;
    if (c && owner == getpid() && !c->err)
        return c;
    struct timeval tv = { 5, 0 };
    c = redisConnectWithTimeout(
        "127.0.0.1", (int)strtol(it_env("WK_TEST_REDIS_PORT"), NULL, 10), tv);
    ck_assert_msg(c && !c->err, "redis connect failed");
    owner = getpid();
    return c;
}

const char *it_redis(const char *fmt, ...)
{
    static char out[4096];
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(redis_ctx(), fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    switch (r->type) {
    case REDIS_REPLY_NIL:
        snprintf(out, sizeof(out), "(nil)");
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(out, sizeof(out), "%lld", r->integer);
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        snprintf(out, sizeof(out), "%s", r->str);
        break;
    case REDIS_REPLY_ERROR:
        snprintf(out, sizeof(out), "ERR %s", r->str);
        break;
    default:
        snprintf(out, sizeof(out), "(array of %zu)", r->elements);
    }
    freeReplyObject(r);
    return out;
}

const char *it_job_field(const char *prefix, const char *id, const char *field)
{
    static char out[4096];
    const char *v = it_redis("HGET %sjob:%s %s", prefix, id, field);
    snprintf(out, sizeof(out), "%s", strcmp(v, "(nil)") == 0 ? "" : v);
    return out;
}

const char *it_wait_job(const char *prefix, const char *id, int timeout_s)
{
    static char state[64];
    for (int i = 0; i < timeout_s * 10; i++) {
        const char *v = it_job_field(prefix, id, "state");
        size_t n =
            strlen(v) < sizeof(state) - 1 ? strlen(v) : sizeof(state) - 1;
        memcpy(state, v, n);
        state[n] = '\0';
        if (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0)
            return state;
        it_sleep_ms(100);
    }
    return "timeout";
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int it_free_port(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    ck_assert_int_ge(fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void it_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

pid_t it_start_proxy(int port, const char *target, const char *ctl)
{
    char portstr[16], script[600], ready[600];
    pid_t pid;

    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(script, sizeof(script), "%s/tests/fault_proxy.py",
             it_env("WK_SRCDIR"));
    snprintf(ready, sizeof(ready), "%s.out", ctl);
    it_write_file(ctl, "up\n");
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execlp("python3", "python3", script, "--port", portstr, "--target",
               target, "--control", ctl, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        if (it_sh("grep -q ready '%s' 2>/dev/null", ready) == 0)
            return pid;
        it_sleep_ms(100);
    }
    it_stop(pid);
    ck_abort_msg("fault proxy did not start");
    return -1;
}

void it_sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

pid_t it_spawn_prog(const char *const *argv, const char *log_path)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

int it_count_in(const char *pattern, const char *file)
{
    char cmd[1024];
    int n = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd), "grep -cE -- '%s' '%s' 2>/dev/null", pattern,
             file);
    p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

bool it_wait_in_log(const char *pattern, const char *file, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        if (it_count_in(pattern, file) > 0)
            return true;
        it_sleep_ms(50);
    }
    return false;
}

int it_http_get(const char *url, const char *path)
{
    char cmd[1200], code[16] = "";
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "curl -s --noproxy '*' -m 5 -o '%s' -w '%%{http_code}' '%s'", path,
             url);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    if (!fgets(code, sizeof(code), p))
        code[0] = '\0';
    pclose(p);
    return (int)strtol(code, NULL, 10);
}

double it_metric(const char *path, const char *series)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    double v = -1;
    size_t n = strlen(series);

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    fclose(f);
    return v;
}
