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
 */
#define _DEFAULT_SOURCE /* flock() */

#include <dirent.h>
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

#include "storage/store.h"

#define FS_CHUNK_BYTES (64u * 1024u)
#define FS_TMP_TAG     ".partial."
#define FS_TMP_RAND    6
#define FS_TMP_TRIES   100

struct fs_store {
    struct store base;
    char *root; /* owned; no trailing '/' unless it is "/" */
};

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

/* One object (or rolled-up prefix) of a listing. */
struct fs_item {
    char *key; /* owned */
    uint64_t size;
    int64_t mtime;
    long long mtime_ns;
    unsigned long long ino;
    bool is_prefix;
};

struct fs_items {
    struct fs_item *v; /* owned */
    size_t n, cap;
};

/* A walk of the directory tree below the prefix's directory. */
struct fs_walk {
    const struct fs_store *st; /* borrowed */
    const char *prefix;        /* borrowed: keys must start with it */
    size_t plen;
    bool tmp;        /* collect .partial files instead of objects */
    bool first_only; /* stop at the first match (a non-empty test) */
    struct fs_items items;
};

static const struct store_ops fs_ops;
static const struct store_writer_ops fs_writer_ops;

static char *str_cat3(const char *a, const char *b, const char *c)
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

/* root + "/" + rel; rel may be "" (the root itself). */
static char *fs_path(const struct fs_store *st, const char *rel)
{
    if (!*rel)
        return strdup(st->root);
    if (strcmp(st->root, "/") == 0)
        return str_cat3("/", rel, "");
    return str_cat3(st->root, "/", rel);
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/* "<name>.partial.XXXXXX": one of our temporary files. */
static bool is_tmp_name(const char *name, size_t len)
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

static enum wk_code check_key(const char *what, const char *key,
                              struct wk_err *err)
{
    const char *base;

    if (!key || !store_key_valid(key))
        return wk_err_set(err, WK_E_INVAL, "%s '%s': invalid key", what,
                          key ? key : "");
    base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (is_tmp_name(base, strlen(base)))
        return wk_err_set(err, WK_E_INVAL,
                          "%s '%s': key looks like a temporary file "
                          "(*" FS_TMP_TAG "XXXXXX)",
                          what, key);
    return WK_OK;
}

static bool is_missing(int e)
{
    return e == ENOENT || e == ENOTDIR;
}

/* ---- random names ---- */

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

/* ---- directories ---- */

/* Create the parent directories of key below the root. */
static enum wk_code make_parents(const struct fs_store *st, const char *key,
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

/* Remove the now-empty parent directories of key, deepest first; stops at
 * the first one that is not empty, and never removes the root. */
static void prune_parents(const struct fs_store *st, const char *key)
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

/* ---- temporary files ---- */

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
            rc = make_parents(st, key, err);
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

/* ---- walking ---- */

static enum wk_code items_add(struct fs_items *it, const char *key, size_t klen,
                              const struct stat *sb, bool is_prefix,
                              struct wk_err *err)
{
    struct fs_item *x;

    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 64;
        struct fs_item *v = realloc(it->v, cap * sizeof(*v));
        if (!v)
            return wk_err_set(err, WK_E_NOMEM, "list: out of memory");
        it->v = v;
        it->cap = cap;
    }
    x = &it->v[it->n];
    memset(x, 0, sizeof(*x));
    x->key = strndup(key, klen);
    if (!x->key)
        return wk_err_set(err, WK_E_NOMEM, "list: out of memory");
    x->is_prefix = is_prefix;
    if (sb) {
        x->size = (uint64_t)sb->st_size;
        x->mtime = (int64_t)sb->st_mtim.tv_sec;
        x->mtime_ns =
            (long long)sb->st_mtim.tv_sec * 1000000000LL + sb->st_mtim.tv_nsec;
        x->ino = (unsigned long long)sb->st_ino;
    }
    it->n++;
    return WK_OK;
}

static void items_release(struct fs_items *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->v[i].key);
    free(it->v);
    memset(it, 0, sizeof(*it));
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct fs_item *)a)->key,
                  ((const struct fs_item *)b)->key);
}

/* Could a key below directory key dkey ("a/b/") start with prefix? */
static bool dir_may_match(const char *dkey, size_t dlen, const char *prefix,
                          size_t plen)
{
    return strncmp(dkey, prefix, dlen < plen ? dlen : plen) == 0;
}

struct name_list {
    char **v; /* owned */
    size_t n, cap;
};

static void names_release(struct name_list *nl)
{
    for (size_t i = 0; i < nl->n; i++)
        free(nl->v[i]);
    free(nl->v);
}

/* Names in directory path (without "." and ".."). A missing directory
 * is empty. The directory is closed before returning, so a deep walk holds
 * one descriptor at a time. */
static enum wk_code read_names(const char *path, struct name_list *out,
                               struct wk_err *err)
{
    DIR *d = opendir(path);
    enum wk_code rc = WK_OK;
    struct dirent *de;

    memset(out, 0, sizeof(*out));
    if (!d) {
        if (is_missing(errno))
            return WK_OK;
        return wk_err_sys(err, WK_E_IO, errno, "list: open directory '%s'",
                          path);
    }
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                rc = wk_err_sys(err, WK_E_IO, errno,
                                "list: read directory '%s'", path);
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 32;
            char **v = realloc(out->v, cap * sizeof(*v));
            if (!v) {
                rc = wk_err_set(err, WK_E_NOMEM, "list: out of memory");
                break;
            }
            out->v = v;
            out->cap = cap;
        }
        out->v[out->n] = strdup(de->d_name);
        if (!out->v[out->n]) {
            rc = wk_err_set(err, WK_E_NOMEM, "list: out of memory");
            break;
        }
        out->n++;
    }
    closedir(d);
    return rc;
}

/* Kind of a directory entry: symlinks are resolved for files only. */
enum fs_kind { FS_OTHER, FS_FILE, FS_DIR };

static enum fs_kind entry_kind(const char *path, struct stat *sb)
{
    if (lstat(path, sb) != 0)
        return FS_OTHER; /* vanished meanwhile */
    if (S_ISDIR(sb->st_mode))
        return FS_DIR;
    if (S_ISLNK(sb->st_mode) && stat(path, sb) != 0)
        return FS_OTHER;
    return S_ISREG(sb->st_mode) ? FS_FILE : FS_OTHER;
}

/* Collect the matching files below rel ("" or "a/b/"). */
static enum wk_code walk_dir(struct fs_walk *w, const char *rel,
                             struct wk_err *err)
{
    struct name_list names = { NULL, 0, 0 };
    char *dpath = fs_path(w->st, rel);
    enum wk_code rc;

    if (!dpath)
        return wk_err_set(err, WK_E_NOMEM, "list: out of memory");
    rc = read_names(dpath, &names, err);
    for (size_t i = 0; rc == WK_OK && i < names.n; i++) {
        const char *name = names.v[i];
        size_t nlen = strlen(name);
        char *key = str_cat3(rel, name, "/");
        char *path = key ? fs_path(w->st, key) : NULL;
        size_t klen = strlen(rel) + nlen, tlen;
        struct stat sb;

        if (w->first_only && w->items.n > 0)
            goto next;
        if (!key || !path) {
            rc = wk_err_set(err, WK_E_NOMEM, "list: out of memory");
            goto next;
        }
        path[strlen(path) - 1] = '\0'; /* drop the '/' */
        switch (entry_kind(path, &sb)) {
        case FS_DIR:
            if (dir_may_match(key, klen + 1, w->prefix, w->plen))
                rc = walk_dir(w, key, err);
            break;
        case FS_FILE:
            if (is_tmp_name(name, nlen) != w->tmp)
                break;
            /* A temporary file is kept under its own name but matches by
             * the key it was to become. */
            tlen = w->tmp ? klen - strlen(FS_TMP_TAG) - FS_TMP_RAND : klen;
            if (tlen >= w->plen && strncmp(key, w->prefix, w->plen) == 0)
                rc = items_add(&w->items, key, klen, &sb, false, err);
            break;
        case FS_OTHER:
            break;
        }
    next:
        free(path);
        free(key);
    }
    names_release(&names);
    free(dpath);
    return rc;
}

/* Directory part of prefix: "a/b/c" -> "a/b/", "abc" -> "". */
static char *prefix_dir(const char *prefix)
{
    const char *slash = strrchr(prefix, '/');

    return strndup(prefix, slash ? (size_t)(slash - prefix) + 1 : 0);
}

/* A prefix whose directory part is not a valid key path would walk outside
 * the root ("../x"); no valid key can match it, so it lists nothing. */
static bool prefix_dir_ok(const char *dir)
{
    size_t len = strlen(dir);
    bool ok;
    char *trim;

    if (len == 0)
        return true;
    trim = strndup(dir, len - 1);
    if (!trim)
        return false;
    ok = store_key_valid(trim);
    free(trim);
    return ok;
}

/* Delimiter "/": each subdirectory of the prefix's directory that holds an
 * object becomes one prefix entry, without walking all of it. */
static enum wk_code collect_slash(const struct fs_store *st, const char *prefix,
                                  const char *dir, struct fs_items *out,
                                  struct wk_err *err)
{
    struct name_list names = { NULL, 0, 0 };
    size_t plen = strlen(prefix);
    char *dpath = fs_path(st, dir);
    enum wk_code rc;

    if (!dpath)
        return wk_err_set(err, WK_E_NOMEM, "list: out of memory");
    rc = read_names(dpath, &names, err);
    for (size_t i = 0; rc == WK_OK && i < names.n; i++) {
        const char *name = names.v[i];
        char *key = str_cat3(dir, name, "/");
        char *path = key ? fs_path(st, key) : NULL;
        size_t klen = strlen(dir) + strlen(name);
        struct fs_walk sub;
        struct stat sb;

        if (!key || !path) {
            rc = wk_err_set(err, WK_E_NOMEM, "list: out of memory");
            goto next;
        }
        path[strlen(path) - 1] = '\0';
        if (klen < plen || strncmp(key, prefix, plen) != 0)
            goto next;
        switch (entry_kind(path, &sb)) {
        case FS_DIR:
            memset(&sub, 0, sizeof(sub));
            sub.st = st;
            sub.prefix = key;
            sub.plen = klen + 1;
            sub.first_only = true;
            rc = walk_dir(&sub, key, err);
            if (rc == WK_OK && sub.items.n > 0)
                rc = items_add(out, key, klen + 1, NULL, true, err);
            items_release(&sub.items);
            break;
        case FS_FILE:
            if (!is_tmp_name(name, strlen(name)))
                rc = items_add(out, key, klen, &sb, false, err);
            break;
        case FS_OTHER:
            break;
        }
    next:
        free(path);
        free(key);
    }
    names_release(&names);
    free(dpath);
    return rc;
}

/* Walk below prefix's directory; sorted by key. */
static enum wk_code collect(const struct fs_store *st, const char *prefix,
                            bool tmp, struct fs_items *out, struct wk_err *err)
{
    struct fs_walk w;
    char *dir = prefix_dir(prefix);
    enum wk_code rc = WK_OK;

    memset(&w, 0, sizeof(w));
    if (!dir)
        return wk_err_set(err, WK_E_NOMEM, "list: out of memory");
    if (prefix_dir_ok(dir)) {
        w.st = st;
        w.prefix = prefix;
        w.plen = strlen(prefix);
        w.tmp = tmp;
        rc = walk_dir(&w, dir, err);
    }
    free(dir);
    if (rc == WK_OK && w.items.n > 1)
        qsort(w.items.v, w.items.n, sizeof(w.items.v[0]), item_cmp);
    if (rc != WK_OK)
        items_release(&w.items);
    *out = w.items;
    return rc;
}

/* S3's CommonPrefixes on a sorted listing: keys with delim after the
 * prefix collapse into one entry "prefix...delim" (they are adjacent). */
static void roll_up(struct fs_items *it, const char *prefix, const char *delim)
{
    size_t plen = strlen(prefix), dlen = strlen(delim), out = 0;

    for (size_t i = 0; i < it->n; i++) {
        struct fs_item *x = &it->v[i];
        const char *d = strstr(x->key + plen, delim);

        if (d) {
            size_t cut = (size_t)(d - x->key) + dlen;
            const struct fs_item *last = out > 0 ? &it->v[out - 1] : NULL;

            if (last && last->is_prefix && strlen(last->key) == cut &&
                strncmp(last->key, x->key, cut) == 0) {
                free(x->key);
                continue;
            }
            x->key[cut] = '\0';
            x->is_prefix = true;
            x->size = 0;
            x->mtime = 0;
            x->mtime_ns = 0;
        }
        it->v[out++] = *x;
    }
    it->n = out;
}

/* ---- ops ---- */

static enum wk_code fs_list(struct store *base, const char *prefix,
                            const char *delimiter, store_list_cb cb, void *ud,
                            struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    struct fs_items items = { NULL, 0, 0 };
    char *dir = NULL;
    enum wk_code rc = WK_OK;

    if (!prefix)
        prefix = "";
    if (delimiter && !*delimiter)
        delimiter = NULL;
    if (delimiter && strcmp(delimiter, "/") == 0) {
        dir = prefix_dir(prefix);
        if (!dir) {
            rc = wk_err_set(err, WK_E_NOMEM, "list: out of memory");
            goto out;
        }
        if (prefix_dir_ok(dir))
            rc = collect_slash(st, prefix, dir, &items, err);
        if (rc == WK_OK && items.n > 1)
            qsort(items.v, items.n, sizeof(items.v[0]), item_cmp);
    } else {
        rc = collect(st, prefix, false, &items, err);
        if (rc == WK_OK && delimiter)
            roll_up(&items, prefix, delimiter);
    }
    for (size_t i = 0; rc == WK_OK && i < items.n; i++) {
        const struct fs_item *x = &items.v[i];
        struct store_entry e;
        char etag[80];

        snprintf(etag, sizeof(etag), "%llu-%lld-%llu",
                 (unsigned long long)x->size, x->mtime_ns, x->ino);
        memset(&e, 0, sizeof(e));
        e.key = x->key;
        e.is_prefix = x->is_prefix;
        e.etag = x->is_prefix ? "" : etag;
        e.size = x->size;
        e.mtime = x->mtime;
        rc = cb(&e, ud, err);
    }
out:
    free(dir);
    items_release(&items);
    return rc;
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
    if ((e && is_missing(e)) || (!e && !S_ISREG(sb->st_mode)))
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
    enum wk_code rc = check_key("head", key, err);

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
    enum wk_code rc = check_key("get", key, err);

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
        if (is_missing(errno))
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

static enum wk_code fs_put(struct store *base, const char *key, const void *p,
                           size_t n, struct wk_err *err);

static enum wk_code fs_put_if(struct store *base, const char *key,
                              const void *p, size_t n, const char *if_match,
                              char *etag_out, size_t etag_len,
                              struct wk_err *err)
{
    int lk = fs_lock_root((const struct fs_store *)base);
    enum wk_code rc = store_put_if_headput(base, key, p, n, if_match, etag_out,
                                           etag_len, err);
    fs_unlock_root(lk);
    return rc;
}

static enum wk_code fs_delete_if(struct store *base, const char *const *keys,
                                 const char *const *etags, size_t n,
                                 size_t *ndeleted, bool *kept,
                                 struct wk_err *err)
{
    int lk = fs_lock_root((const struct fs_store *)base);
    enum wk_code rc =
        store_delete_if_serial(base, keys, etags, n, ndeleted, kept, err);
    fs_unlock_root(lk);
    return rc;
}

static enum wk_code fs_put(struct store *base, const char *key, const void *p,
                           size_t n, struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    char *path = NULL, *tmp = NULL;
    int fd = -1, e;
    enum wk_code rc = check_key("put", key, err);

    if (rc != WK_OK)
        goto out;
    path = fs_path(st, key);
    if (!path) {
        rc = wk_err_set(err, WK_E_NOMEM, "put '%s': out of memory", key);
        goto out;
    }
    rc = make_parents(st, key, err);
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
        prune_parents(st, key);
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
        prune_parents(w->st, w->key);
    }
    free(w->tmp);
    free(w->path);
    free(w->key);
    free(w);
}

static enum wk_code fs_open_write(struct store *base, const char *key,
                                  const struct store_writer_opts *opts,
                                  struct store_writer **out, struct wk_err *err)
{
    struct fs_store *st = (struct fs_store *)base;
    struct fs_writer *w = NULL;
    enum wk_code rc = check_key("open write", key, err);

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
    rc = make_parents(st, key, err);
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

static enum wk_code fs_delete_many(struct store *base, const char *const *keys,
                                   size_t n, size_t *ndeleted,
                                   struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    enum wk_code first = WK_OK;
    size_t done = 0;

    for (size_t i = 0; i < n; i++) {
        enum wk_code rc = check_key("delete", keys[i], err);
        char *path = rc == WK_OK ? fs_path(st, keys[i]) : NULL;

        if (rc == WK_OK && !path)
            rc = wk_err_set(err, WK_E_NOMEM, "delete '%s': out of memory",
                            keys[i]);
        if (rc == WK_OK && unlink(path) != 0 && !is_missing(errno)) {
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
        prune_parents(st, keys[i]);
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
    rc = collect(st, prefix, true, &tmps, err);
    for (size_t i = 0; rc == WK_OK && i < tmps.n; i++) {
        char *path = fs_path(st, tmps.v[i].key);

        if (!path) {
            rc = wk_err_set(err, WK_E_NOMEM, "abort pending: out of memory");
            break;
        }
        if (unlink(path) == 0) {
            count++;
            prune_parents(st, tmps.v[i].key);
        } else if (!is_missing(errno)) {
            rc = wk_err_sys(err, WK_E_IO, errno, "abort pending: remove '%s'",
                            tmps.v[i].key);
        }
        free(path);
    }
    items_release(&tmps);
    if (naborted)
        *naborted = count;
    return rc;
}

static enum wk_code fs_count_pending(struct store *base, const char *prefix,
                                     size_t *npending, struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    struct fs_items tmps = { NULL, 0, 0 };
    enum wk_code rc = collect(st, prefix ? prefix : "", true, &tmps, err);

    *npending = rc == WK_OK ? tmps.n : 0;
    items_release(&tmps);
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

static const struct store_writer_ops fs_writer_ops = {
    .name = "fs",
    .write = fs_writer_write,
    .commit = fs_writer_commit,
    .free = fs_writer_free,
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
        if (is_missing(errno))
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
