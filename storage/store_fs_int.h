/*
 * store_fs_int: what the files of the directory store (store_fs.c,
 * store_fs_list.c, store_fs_write.c) share: the store's struct, listing
 * items, key and path helpers and the store_ops they implement. Not for
 * use outside storage/.
 */
#ifndef WK_STORAGE_STORE_FS_INT_H
#define WK_STORAGE_STORE_FS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

#define FS_TMP_TAG   ".partial."
#define FS_TMP_RAND  6
#define FS_TMP_TRIES 100

struct fs_store {
    struct store base;
    char *root; /* owned; no trailing '/' unless it is "/" */
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

/* store_fs.c: keys, paths, directories */
/* a + b + c as a new string (free()); NULL when out of memory. */
char *fs_str_cat3(const char *a, const char *b, const char *c);
/* root + "/" + rel; rel may be "" (the root itself). */
char *fs_path(const struct fs_store *st, const char *rel);
/* "<name>.partial.XXXXXX": one of our temporary files. */
bool fs_is_tmp_name(const char *name, size_t len);
enum wk_code fs_check_key(const char *what, const char *key,
                          struct wk_err *err);
/* errno says the file is not there (ENOENT, ENOTDIR). */
bool fs_is_missing(int e);
/* Create the parent directories of key below the root. */
enum wk_code fs_make_parents(const struct fs_store *st, const char *key,
                             struct wk_err *err);
/* Remove the now-empty parent directories of key, deepest first; stops at
 * the first one that is not empty, and never removes the root. */
void fs_prune_parents(const struct fs_store *st, const char *key);

/* store_fs_list.c: walking and listing */
void fs_items_release(struct fs_items *it);
/* Walk below prefix's directory (objects, or with tmp the .partial files
 * by the key they were to become); sorted by key. */
enum wk_code fs_collect(const struct fs_store *st, const char *prefix, bool tmp,
                        struct fs_items *out, struct wk_err *err);
enum wk_code fs_list(struct store *base, const char *prefix,
                     const char *delimiter, store_list_cb cb, void *ud,
                     struct wk_err *err);
enum wk_code fs_list_after(struct store *base, const char *prefix,
                           const char *delimiter, const char *start_after,
                           store_list_cb cb, void *ud, struct wk_err *err);

/* store_fs_write.c: atomic writes and conditional changes */
enum wk_code fs_put(struct store *base, const char *key, const void *p,
                    size_t n, struct wk_err *err);
enum wk_code fs_put_if(struct store *base, const char *key, const void *p,
                       size_t n, const char *if_match, char *etag_out,
                       size_t etag_len, struct wk_err *err);
enum wk_code fs_delete_if(struct store *base, const char *const *keys,
                          const char *const *etags, size_t n, size_t *ndeleted,
                          bool *kept, struct wk_err *err);
enum wk_code fs_open_write(struct store *base, const char *key,
                           const struct store_writer_opts *opts,
                           struct store_writer **out, struct wk_err *err);

#endif
