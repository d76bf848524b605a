/* Writes of the directory store: a temporary "<key>.partial.XXXXXX"
 * written, fsync'd and renamed over the key (put, the writer of
 * open_write), and the conditional put and delete, compared and changed
 * under an exclusive flock() of the root plus a process-wide mutex. */
#define _DEFAULT_SOURCE /* flock() */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/store_fs_int.h"

struct fs_writer {
    struct store_writer base;
    struct fs_store *st; /* borrowed; outlives the writer */
    char *key;           /* owned */
    char *path;          /* owned: the final file */
    char *tmp;           /* owned: the .partial file */
    int fd;              /* -1 once closed */
    bool committed;
    bool failed; /* a write failed: the file is incomplete */
};

static const struct store_writer_ops fs_writer_ops;

/* random names */

static atomic_uint_fast64_t rand_counter;

static uint64_t next_rand(void)
{
    struct timespec ts;
    uint64_t z;

    clock_gettime(CLOCK_REALTIME, &ts);
    z = atomic_fetch_add(&rand_counter, 1) * 0x9e3779b97f4a7c15ULL;
    z ^= (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
         ((uint64_t)getpid() << 20);
    /* splitmix64 finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd;

    if (!slash)
        return;
    dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!dir)
        return;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        /* Best effort: some file systems refuse fsync on a directory. */
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* temporary files */

/* Create "<path>.partial.XXXXXX" exclusively; parents are created (again,
 * if a concurrent delete pruned them). */
static enum wk_code open_tmp(const struct fs_store *st, const char *what,
                             const char *key, const char *path, int *fd_out,
                             char **tmp_out, struct wk_err *err)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t len = strlen(path) + strlen(FS_TMP_TAG) + FS_TMP_RAND + 1;
    char *tmp = malloc(len);
    enum wk_code rc = WK_OK;
    int fd = -1;

    if (!tmp)
        return wk_err_set(err, WK_E_NOMEM, "%s '%s': out of memory", what, key);
    for (int i = 0; i < FS_TMP_TRIES; i++) {
        uint64_t r = next_rand();
        size_t at = (size_t)snprintf(tmp, len, "%s" FS_TMP_TAG, path);

        for (int j = 0; j < FS_TMP_RAND; j++, r /= 36)
            tmp[at + (size_t)j] = chars[r % 36];
        tmp[at + FS_TMP_RAND] = '\0';
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0)
            break;
        if (errno == EEXIST || errno == EINTR)
            continue;
        if (errno == ENOENT) {
            rc = fs_make_parents(st, key, err);
            if (rc != WK_OK)
                break;
            continue;
        }
        rc = wk_err_sys(err, WK_E_IO, errno, "%s '%s': create '%s'", what, key,
                        tmp);
        break;
    }
    if (rc == WK_OK && fd < 0)
        rc = wk_err_set(err, WK_E_IO,
                        "%s '%s': cannot create a temporary "
                        "file",
                        what, key);
    if (rc != WK_OK) {
        free(tmp);
        return rc;
    }
    *fd_out = fd;
    *tmp_out = tmp;
    return WK_OK;
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync, close, rename over path, fsync the directory. Closes *fd. */
static enum wk_code finish_tmp(const char *what, const char *key, int *fd,
                               const char *tmp, const char *path,
                               struct wk_err *err)
{
    int fdv = *fd;

    *fd = -1;
    if (fsync(fdv) != 0) {
        int e = errno;
        close(fdv);
        return wk_err_sys(err, WK_E_IO, e, "%s '%s': fsync", what, key);
    }
    if (close(fdv) != 0)
        return wk_err_sys(err, WK_E_IO, errno, "%s '%s': close", what, key);
    if (rename(tmp, path) != 0) {
        if (errno == ENOENT)
            return wk_err_set(err, WK_E_NOTFOUND,
                              "%s '%s': the upload was aborted", what, key);
        return wk_err_sys(err, WK_E_IO, errno, "%s '%s': rename", what, key);
    }
    fsync_dir_of(path);
    return WK_OK;
}

/* Compare and write under an exclusive flock() of the store's root
 * directory, so workers (processes) sharing it on one machine are fenced
 * against each other, and a process-wide mutex for the threads of one
 * (flock() needs no file inside the store; NFS does not honour it). */
static pthread_mutex_t fs_cond_lock = PTHREAD_MUTEX_INITIALIZER;

static int fs_lock_root(const struct fs_store *st)
{
    int fd;

    pthread_mutex_lock(&fs_cond_lock);
    fd = open(st->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
            ;
    }
    return fd; /* -1: the mutex alone */
}

static void fs_unlock_root(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
    pthread_mutex_unlock(&fs_cond_lock);
}

enum wk_code fs_put_if(struct store *base, const char *key, const void *p,
                       size_t n, const char *if_match, char *etag_out,
                       size_t etag_len, struct wk_err *err)
{
    int lk = fs_lock_root((const struct fs_store *)base);
    enum wk_code rc = store_put_if_headput(base, key, p, n, if_match, etag_out,
                                           etag_len, err);
    fs_unlock_root(lk);
    return rc;
}

enum wk_code fs_delete_if(struct store *base, const char *const *keys,
                          const char *const *etags, size_t n, size_t *ndeleted,
                          bool *kept, struct wk_err *err)
{
    int lk = fs_lock_root((const struct fs_store *)base);
    enum wk_code rc =
        store_delete_if_serial(base, keys, etags, n, ndeleted, kept, err);
    fs_unlock_root(lk);
    return rc;
}

enum wk_code fs_put(struct store *base, const char *key, const void *p,
                    size_t n, struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    char *path = NULL, *tmp = NULL;
    int fd = -1, e;
    enum wk_code rc = fs_check_key("put", key, err);

    if (rc != WK_OK)
        goto out;
    path = fs_path(st, key);
    if (!path) {
        rc = wk_err_set(err, WK_E_NOMEM, "put '%s': out of memory", key);
        goto out;
    }
    rc = fs_make_parents(st, key, err);
    if (rc == WK_OK)
        rc = open_tmp(st, "put", key, path, &fd, &tmp, err);
    if (rc != WK_OK)
        goto out;
    e = write_all(fd, p, n);
    if (e) {
        rc = wk_err_sys(err, WK_E_IO, e, "put '%s': write", key);
        goto out;
    }
    rc = finish_tmp("put", key, &fd, tmp, path, err);
    if (rc == WK_OK) {
        free(tmp);
        tmp = NULL;
    }
out:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        fs_prune_parents(st, key);
    }
    free(tmp);
    free(path);
    return rc;
}

static void fs_writer_free(struct store_writer *base)
{
    struct fs_writer *w = (struct fs_writer *)base;

    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (!w->committed && w->tmp) {
        unlink(w->tmp);
        fs_prune_parents(w->st, w->key);
    }
    free(w->tmp);
    free(w->path);
    free(w->key);
    free(w);
}

enum wk_code fs_open_write(struct store *base, const char *key,
                           const struct store_writer_opts *opts,
                           struct store_writer **out, struct wk_err *err)
{
    struct fs_store *st = (struct fs_store *)base;
    struct fs_writer *w = NULL;
    enum wk_code rc = fs_check_key("open write", key, err);

    (void)opts;
    *out = NULL;
    if (rc != WK_OK)
        return rc;
    w = calloc(1, sizeof(*w));
    if (!w)
        return wk_err_set(err, WK_E_NOMEM, "open write '%s': out of memory",
                          key);
    w->base.ops = &fs_writer_ops;
    w->st = st;
    w->fd = -1;
    w->key = strdup(key);
    w->path = fs_path(st, key);
    if (!w->key || !w->path) {
        rc = wk_err_set(err, WK_E_NOMEM, "open write '%s': out of memory", key);
        goto out;
    }
    rc = fs_make_parents(st, key, err);
    if (rc == WK_OK)
        rc = open_tmp(st, "open write", key, w->path, &w->fd, &w->tmp, err);
out:
    if (rc != WK_OK) {
        fs_writer_free(&w->base);
        return rc;
    }
    *out = &w->base;
    return WK_OK;
}

static enum wk_code fs_writer_write(struct store_writer *base, const void *p,
                                    size_t n, struct wk_err *err)
{
    struct fs_writer *w = (struct fs_writer *)base;
    int e;

    if (w->fd < 0 || w->failed)
        return wk_err_set(err, WK_E_INTERNAL, "write '%s': the writer is %s",
                          w->key,
                          w->committed ? "already committed" : "failed");
    e = write_all(w->fd, p, n);
    if (e) {
        w->failed = true;
        return wk_err_sys(err, WK_E_IO, e, "write '%s'", w->key);
    }
    return WK_OK;
}

static enum wk_code fs_writer_commit(struct store_writer *base,
                                     struct wk_err *err)
{
    struct fs_writer *w = (struct fs_writer *)base;
    enum wk_code rc;

    if (w->fd < 0 || w->failed)
        return wk_err_set(err, WK_E_INTERNAL, "commit '%s': the writer is %s",
                          w->key,
                          w->committed ? "already committed" : "failed");
    rc = finish_tmp("commit", w->key, &w->fd, w->tmp, w->path, err);
    if (rc == WK_OK)
        w->committed = true;
    else
        w->failed = true;
    return rc;
}

static const struct store_writer_ops fs_writer_ops = {
    .name = "fs",
    .write = fs_writer_write,
    .commit = fs_writer_commit,
    .free = fs_writer_free,
};
