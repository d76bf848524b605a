/*
 * store_fs: a local directory as a store. A key is a path relative to the
 * root; parent directories are created on write and removed again when a
 * delete leaves them empty (never the root itself).
 *
 * Atomic writes: an object is written to "<key>.partial.<6 random
 * characters>" next to its final name, fsync'd, renamed over the key and
 * the directory fsync'd, so readers see the old object or the new one.
 * Listings skip those temporary files; a key whose last component looks like
 * one is refused. abort_pending() and count_pending() find them by the key
 * they were meant to become.
 *
 * Listings walk the subtree below the prefix's directory, then sort the
 * keys with strcmp, which is S3's order (UTF-8 bytes of the full key: "a-b"
 * comes before "a/b"). Memory is O(keys listed). Symlinks to files are
 * followed; symlinks to directories are skipped, so a walk never loops.
 * The ETag is a change tag "<size>-<mtime in ns>".
 *
 * S3 can hold both "a" and "a/b"; a file system cannot, so such a write
 * fails with WK_E_IO (ENOTDIR or EISDIR).
 *
 * This file: keys and paths, directories, HEAD and GET, deletes, pending
 * temporary files, the ops table; listings are in store_fs_list.c, writes
 * in store_fs_write.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/store_fs_int.h"

#define FS_CHUNK_BYTES (64u * 1024u)

static const struct store_ops fs_ops;

char *fs_str_cat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);

    if (!s)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

char *fs_path(const struct fs_store *st, const char *rel)
{
    if (!*rel)
        return strdup(st->root);
    if (strcmp(st->root, "/") == 0)
        return fs_str_cat3("/", rel, "");
    return fs_str_cat3(st->root, "/", rel);
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

bool fs_is_tmp_name(const char *name, size_t len)
{
    size_t tag = strlen(FS_TMP_TAG);

    if (len <= tag + FS_TMP_RAND)
        return false;
    if (memcmp(name + len - FS_TMP_RAND - tag, FS_TMP_TAG, tag) != 0)
        return false;
    for (size_t i = len - FS_TMP_RAND; i < len; i++)
        if (!is_alnum(name[i]))
            return false;
    return true;
}

enum wk_code fs_check_key(const char *what, const char *key, struct wk_err *err)
{
    const char *base;

    if (!key || !store_key_valid(key))
        return wk_err_set(err, WK_E_INVAL, "%s '%s': invalid key", what,
                          key ? key : "");
    base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (fs_is_tmp_name(base, strlen(base)))
        return wk_err_set(err, WK_E_INVAL,
                          "%s '%s': key looks like a temporary file "
                          "(*" FS_TMP_TAG "XXXXXX)",
                          what, key);
    return WK_OK;
}

bool fs_is_missing(int e)
{
    return e == ENOENT || e == ENOTDIR;
}

/* directories */

enum wk_code fs_make_parents(const struct fs_store *st, const char *key,
                             struct wk_err *err)
{
    char *path = fs_path(st, key);
    size_t skip;
    enum wk_code rc = WK_OK;

    if (!path)
        return wk_err_set(err, WK_E_NOMEM, "put '%s': out of memory", key);
    skip = strlen(path) - strlen(key);
    for (char *p = path + skip; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            rc = wk_err_sys(err, WK_E_IO, errno,
                            "put '%s': create directory '%s'", key, path);
            break;
        }
        *p = '/';
    }
    free(path);
    return rc;
}

void fs_prune_parents(const struct fs_store *st, const char *key)
{
    char *path = fs_path(st, key);
    size_t skip;

    if (!path)
        return;
    skip = strlen(path) - strlen(key);
    for (;;) {
        char *slash = strrchr(path + skip, '/');
        if (!slash)
            break;
        *slash = '\0';
        if (rmdir(path) != 0)
            break;
    }
    free(path);
}

/* stat a key's file; WK_E_NOTFOUND unless it is a regular file. */
static enum wk_code stat_key(const struct fs_store *st, const char *what,
                             const char *key, struct stat *sb,
                             struct wk_err *err)
{
    char *path = fs_path(st, key);
    int e = 0;

    if (!path)
        return wk_err_set(err, WK_E_NOMEM, "%s '%s': out of memory", what, key);
    if (stat(path, sb) != 0)
        e = errno;
    free(path);
    if ((e && fs_is_missing(e)) || (!e && !S_ISREG(sb->st_mode)))
        return wk_err_set(err, WK_E_NOTFOUND, "%s '%s': no such object", what,
                          key);
    if (e)
        return wk_err_sys(err, WK_E_IO, e, "%s '%s'", what, key);
    return WK_OK;
}

static void fill_stat(const struct stat *sb, struct store_stat *out)
{
    memset(out, 0, sizeof(*out));
    out->size = (uint64_t)sb->st_size;
    out->mtime = (int64_t)sb->st_mtim.tv_sec;
    /* a put renames a new file over the old one: the inode changes even
     * when size and time (one clock tick) do not */
    snprintf(out->etag, sizeof(out->etag), "%llu-%lld-%llu",
             (unsigned long long)sb->st_size,
             (long long)sb->st_mtim.tv_sec * 1000000000LL + sb->st_mtim.tv_nsec,
             (unsigned long long)sb->st_ino);
}

static enum wk_code fs_head(struct store *base, const char *key,
                            struct store_stat *out, struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    struct stat sb;
    enum wk_code rc = fs_check_key("head", key, err);

    if (rc == WK_OK)
        rc = stat_key(st, "head", key, &sb, err);
    if (rc == WK_OK)
        fill_stat(&sb, out);
    return rc;
}

static enum wk_code fs_get(struct store *base, const char *key, uint64_t offset,
                           uint64_t len, store_sink_cb sink, void *ud,
                           struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    char *path = NULL;
    unsigned char *buf = NULL;
    struct stat sb;
    int fd = -1;
    enum wk_code rc = fs_check_key("get", key, err);

    if (rc != WK_OK)
        goto out;
    path = fs_path(st, key);
    buf = malloc(FS_CHUNK_BYTES);
    if (!path || !buf) {
        rc = wk_err_set(err, WK_E_NOMEM, "get '%s': out of memory", key);
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (fs_is_missing(errno))
            rc =
                wk_err_set(err, WK_E_NOTFOUND, "get '%s': no such object", key);
        else
            rc = wk_err_sys(err, WK_E_IO, errno, "get '%s': open", key);
        goto out;
    }
    if (fstat(fd, &sb) != 0) {
        rc = wk_err_sys(err, WK_E_IO, errno, "get '%s': stat", key);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = wk_err_set(err, WK_E_NOTFOUND, "get '%s': no such object", key);
        goto out;
    }
    /* A range past the end means the object changed since it was listed. */
    if (offset > (uint64_t)sb.st_size ||
        (len != UINT64_MAX && len > (uint64_t)sb.st_size - offset)) {
        rc =
            wk_err_set(err, WK_E_CONFLICT,
                       "get '%s': range %llu+%llu is past the end of the "
                       "object (%llu bytes)",
                       key, (unsigned long long)offset, (unsigned long long)len,
                       (unsigned long long)sb.st_size);
        goto out;
    }
    if (len == UINT64_MAX)
        len = (uint64_t)sb.st_size - offset;
    while (len > 0) {
        size_t want = len < FS_CHUNK_BYTES ? (size_t)len : FS_CHUNK_BYTES;
        ssize_t got = pread(fd, buf, want, (off_t)offset);

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = wk_err_sys(err, WK_E_IO, errno, "get '%s': read", key);
            goto out;
        }
        if (got == 0) {
            rc = wk_err_set(err, WK_E_CONFLICT,
                            "get '%s': the object shrank while reading", key);
            goto out;
        }
        rc = sink(buf, (size_t)got, ud, err);
        if (rc != WK_OK)
            goto out;
        offset += (uint64_t)got;
        len -= (uint64_t)got;
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    free(path);
    return rc;
}

static enum wk_code fs_delete_many(struct store *base, const char *const *keys,
                                   size_t n, size_t *ndeleted,
                                   struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    enum wk_code first = WK_OK;
    size_t done = 0;

    for (size_t i = 0; i < n; i++) {
        enum wk_code rc = fs_check_key("delete", keys[i], err);
        char *path = rc == WK_OK ? fs_path(st, keys[i]) : NULL;

        if (rc == WK_OK && !path)
            rc = wk_err_set(err, WK_E_NOMEM, "delete '%s': out of memory",
                            keys[i]);
        if (rc == WK_OK && unlink(path) != 0 && !fs_is_missing(errno)) {
            int e = errno;
            struct stat sb;

            /* A directory is not an object: the key is already absent. */
            if (!((e == EISDIR || e == EPERM) && lstat(path, &sb) == 0 &&
                  S_ISDIR(sb.st_mode)))
                rc = wk_err_sys(err, WK_E_IO, e, "delete '%s'", keys[i]);
        }
        free(path);
        if (rc != WK_OK) {
            if (first == WK_OK)
                first = rc;
            continue;
        }
        fs_prune_parents(st, keys[i]);
        done++;
    }
    if (ndeleted)
        *ndeleted = done;
    return first;
}

static enum wk_code fs_abort_pending(struct store *base, const char *prefix,
                                     size_t *naborted, struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    struct fs_items tmps = { NULL, 0, 0 };
    size_t count = 0;
    enum wk_code rc;

    if (!prefix)
        prefix = "";
    rc = fs_collect(st, prefix, true, &tmps, err);
    for (size_t i = 0; rc == WK_OK && i < tmps.n; i++) {
        char *path = fs_path(st, tmps.v[i].key);

        if (!path) {
            rc = wk_err_set(err, WK_E_NOMEM, "abort pending: out of memory");
            break;
        }
        if (unlink(path) == 0) {
            count++;
            fs_prune_parents(st, tmps.v[i].key);
        } else if (!fs_is_missing(errno)) {
            rc = wk_err_sys(err, WK_E_IO, errno, "abort pending: remove '%s'",
                            tmps.v[i].key);
        }
        free(path);
    }
    fs_items_release(&tmps);
    if (naborted)
        *naborted = count;
    return rc;
}

static enum wk_code fs_count_pending(struct store *base, const char *prefix,
                                     size_t *npending, struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    struct fs_items tmps = { NULL, 0, 0 };
    enum wk_code rc = fs_collect(st, prefix ? prefix : "", true, &tmps, err);

    *npending = rc == WK_OK ? tmps.n : 0;
    fs_items_release(&tmps);
    return rc;
}

static void fs_free(struct store *base)
{
    struct fs_store *st = (struct fs_store *)base;

    free(st->root);
    free(st);
}

static const struct store_ops fs_ops = {
    .name = "fs",
    .list = fs_list,
    .list_after = fs_list_after,
    .head = fs_head,
    .get = fs_get,
    .get_many = store_get_many_serial,
    .put = fs_put,
    .put_if = fs_put_if,
    .put_many = store_put_many_serial,
    .open_write = fs_open_write,
    .delete_many = fs_delete_many,
    .delete_if = fs_delete_if,
    .abort_pending = fs_abort_pending,
    .count_pending = fs_count_pending,
    .free = fs_free,
};

enum wk_code store_fs_new(const char *dir, struct store **out,
                          struct wk_err *err)
{
    struct fs_store *st = NULL;
    struct stat sb;
    size_t len;

    *out = NULL;
    if (!dir || !*dir)
        return wk_err_set(err, WK_E_INVAL, "store directory: empty path");
    if (stat(dir, &sb) != 0) {
        if (fs_is_missing(errno))
            return wk_err_set(err, WK_E_NOTFOUND,
                              "store directory '%s' does not exist", dir);
        return wk_err_sys(err, WK_E_IO, errno, "store directory '%s'", dir);
    }
    if (!S_ISDIR(sb.st_mode))
        return wk_err_set(err, WK_E_INVAL,
                          "store directory '%s' is not a directory", dir);
    st = calloc(1, sizeof(*st));
    if (!st)
        return wk_err_set(err, WK_E_NOMEM, "store directory: out of memory");
    len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    st->root = strndup(dir, len);
    if (!st->root) {
        free(st);
        return wk_err_set(err, WK_E_NOMEM, "store directory: out of memory");
    }
    st->base.ops = &fs_ops;
    *out = &st->base;
    return WK_OK;
}
