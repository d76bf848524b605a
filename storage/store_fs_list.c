/* Listings of the directory store: a walk of the subtree below the
 * prefix's directory (symlinks to files followed, to directories not),
 * sorted with strcmp (S3's order), with S3's CommonPrefixes for a
 * delimiter and its start-after (subtrees wholly before it are not
 * walked); the same walk finds the temporary files of pending writes. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/store_fs_int.h"

/* A walk of the directory tree below the prefix's directory. */
struct fs_walk {
    const struct fs_store *st; /* borrowed */
    const char *prefix;        /* borrowed: keys must start with it */
    size_t plen;
    const char *after; /* borrowed, or NULL: skip subtrees before it */
    bool tmp;          /* collect .partial files instead of objects */
    bool first_only;   /* stop at the first match (a non-empty test) */
    struct fs_items items;
};

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

void fs_items_release(struct fs_items *it)
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

/* Is every key below directory key dkey ("a/b/") before after? They all
 * start with dkey, so yes when dkey is before after and not a prefix of
 * it. */
static bool dir_before(const char *dkey, size_t dlen, const char *after)
{
    return after && strncmp(dkey, after, dlen) < 0;
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
        if (fs_is_missing(errno))
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

/* One entry of a directory being read. */
struct fs_entry {
    const char *name; /* borrowed */
    size_t nlen;
    const char *key;  /* borrowed: the directory's key + name + "/" */
    size_t klen;      /* without the '/' */
    const char *path; /* borrowed: its file (no trailing '/') */
};

typedef enum wk_code (*fs_entry_cb)(const struct fs_entry *e, void *ud,
                                    struct wk_err *err);

/* cb for each entry of directory rel ("" or "a/b/") until one fails; once
 * stop_if_any holds an item, the remaining entries are skipped. */
static enum wk_code each_entry(const struct fs_store *st, const char *rel,
                               const struct fs_items *stop_if_any,
                               fs_entry_cb cb, void *ud, struct wk_err *err)
{
    struct name_list names = { NULL, 0, 0 };
    char *dpath = fs_path(st, rel);
    enum wk_code rc;

    if (!dpath)
        return wk_err_set(err, WK_E_NOMEM, "list: out of memory");
    rc = read_names(dpath, &names, err);
    for (size_t i = 0; rc == WK_OK && i < names.n; i++) {
        struct fs_entry e;
        char *key = fs_str_cat3(rel, names.v[i], "/");
        char *path = key ? fs_path(st, key) : NULL;

        if (stop_if_any && stop_if_any->n > 0)
            goto next;
        if (!key || !path) {
            rc = wk_err_set(err, WK_E_NOMEM, "list: out of memory");
            goto next;
        }
        path[strlen(path) - 1] = '\0'; /* drop the '/' */
        e.name = names.v[i];
        e.nlen = strlen(e.name);
        e.key = key;
        e.klen = strlen(rel) + e.nlen;
        e.path = path;
        rc = cb(&e, ud, err);
    next:
        free(path);
        free(key);
    }
    names_release(&names);
    free(dpath);
    return rc;
}

static enum wk_code walk_dir(struct fs_walk *w, const char *rel,
                             struct wk_err *err);

static enum wk_code walk_entry(const struct fs_entry *e, void *ud,
                               struct wk_err *err)
{
    struct fs_walk *w = ud;
    struct stat sb;
    size_t tlen;

    switch (entry_kind(e->path, &sb)) {
    case FS_DIR:
        if (dir_may_match(e->key, e->klen + 1, w->prefix, w->plen) &&
            !dir_before(e->key, e->klen + 1, w->after))
            return walk_dir(w, e->key, err);
        break;
    case FS_FILE:
        if (fs_is_tmp_name(e->name, e->nlen) != w->tmp)
            break;
        /* A temporary file is kept under its own name but matches by
         * the key it was to become. */
        tlen = w->tmp ? e->klen - strlen(FS_TMP_TAG) - FS_TMP_RAND : e->klen;
        if (tlen >= w->plen && strncmp(e->key, w->prefix, w->plen) == 0)
            return items_add(&w->items, e->key, e->klen, &sb, false, err);
        break;
    case FS_OTHER:
        break;
    }
    return WK_OK;
}

/* Collect the matching files below rel ("" or "a/b/"). */
static enum wk_code walk_dir(struct fs_walk *w, const char *rel,
                             struct wk_err *err)
{
    return each_entry(w->st, rel, w->first_only ? &w->items : NULL, walk_entry,
                      w, err);
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

struct slash_state {
    const struct fs_store *st; /* borrowed */
    const char *prefix;        /* borrowed */
    size_t plen;
    const char *after;    /* borrowed, or NULL */
    struct fs_items *out; /* borrowed */
};

/* Does the subtree of directory key dkey ("a/b/") hold an object? */
static enum wk_code dir_has_object(const struct fs_store *st, const char *dkey,
                                   bool *yes, struct wk_err *err)
{
    struct fs_walk sub;
    enum wk_code rc;

    memset(&sub, 0, sizeof(sub));
    sub.st = st;
    sub.prefix = dkey;
    sub.plen = strlen(dkey);
    sub.first_only = true;
    rc = walk_dir(&sub, dkey, err);
    *yes = rc == WK_OK && sub.items.n > 0;
    fs_items_release(&sub.items);
    return rc;
}

/* A subdirectory becomes a candidate prefix entry; whether it holds an
 * object is tested as it is emitted (fs_list_after), so that a listing
 * its caller stops early does not walk every subdirectory. */
static enum wk_code slash_entry(const struct fs_entry *e, void *ud,
                                struct wk_err *err)
{
    struct slash_state *ss = ud;
    struct stat sb;
    enum wk_code rc = WK_OK;

    if (e->klen < ss->plen || strncmp(e->key, ss->prefix, ss->plen) != 0)
        return WK_OK;
    /* e->key ends in '/': at or before after, so is the file key */
    if (ss->after && strcmp(e->key, ss->after) <= 0)
        return WK_OK;
    switch (entry_kind(e->path, &sb)) {
    case FS_DIR:
        rc = items_add(ss->out, e->key, e->klen + 1, NULL, true, err);
        break;
    case FS_FILE:
        if (!fs_is_tmp_name(e->name, e->nlen)) /* filtered when emitted */
            rc = items_add(ss->out, e->key, e->klen, &sb, false, err);
        break;
    case FS_OTHER:
        break;
    }
    return rc;
}

/* Delimiter "/": each subdirectory of the prefix's directory (after
 * start_after) becomes a candidate prefix entry, without walking it. */
static enum wk_code collect_slash(const struct fs_store *st, const char *prefix,
                                  const char *dir, const char *after,
                                  struct fs_items *out, struct wk_err *err)
{
    struct slash_state ss = { st, prefix, strlen(prefix), after, out };

    return each_entry(st, dir, NULL, slash_entry, &ss, err);
}

static enum wk_code collect(const struct fs_store *st, const char *prefix,
                            bool tmp, const char *after, struct fs_items *out,
                            struct wk_err *err)
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
        w.after = after;
        rc = walk_dir(&w, dir, err);
    }
    free(dir);
    if (rc == WK_OK && w.items.n > 1)
        qsort(w.items.v, w.items.n, sizeof(w.items.v[0]), item_cmp);
    if (rc != WK_OK)
        fs_items_release(&w.items);
    *out = w.items;
    return rc;
}

enum wk_code fs_collect(const struct fs_store *st, const char *prefix, bool tmp,
                        struct fs_items *out, struct wk_err *err)
{
    return collect(st, prefix, tmp, NULL, out, err);
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

enum wk_code fs_list_after(struct store *base, const char *prefix,
                           const char *delimiter, const char *start_after,
                           store_list_cb cb, void *ud, struct wk_err *err)
{
    const struct fs_store *st = (const struct fs_store *)base;
    struct fs_items items = { NULL, 0, 0 };
    char *dir = NULL;
    bool slash = false;
    enum wk_code rc = WK_OK;

    if (!prefix)
        prefix = "";
    if (delimiter && !*delimiter)
        delimiter = NULL;
    if (start_after && !*start_after)
        start_after = NULL;
    if (delimiter && strcmp(delimiter, "/") == 0) {
        slash = true;
        dir = prefix_dir(prefix);
        if (!dir) {
            rc = wk_err_set(err, WK_E_NOMEM, "list: out of memory");
            goto out;
        }
        if (prefix_dir_ok(dir))
            rc = collect_slash(st, prefix, dir, start_after, &items, err);
        if (rc == WK_OK && items.n > 1)
            qsort(items.v, items.n, sizeof(items.v[0]), item_cmp);
    } else {
        rc = collect(st, prefix, false, start_after, &items, err);
        if (rc == WK_OK && delimiter)
            roll_up(&items, prefix, delimiter);
    }
    for (size_t i = 0; rc == WK_OK && i < items.n; i++) {
        const struct fs_item *x = &items.v[i];
        struct store_entry e;
        char etag[80];
        bool has = true;

        if (start_after && strcmp(x->key, start_after) <= 0)
            continue;
        if (slash && x->is_prefix)
            rc = dir_has_object(st, x->key, &has, err);
        if (rc != WK_OK || !has)
            continue;

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
    fs_items_release(&items);
    return rc;
}

enum wk_code fs_list(struct store *base, const char *prefix,
                     const char *delimiter, store_list_cb cb, void *ud,
                     struct wk_err *err)
{
    return fs_list_after(base, prefix, delimiter, NULL, cb, ud, err);
}
