/*
 * job_list: the listing of one prefix that the archive, its checks after
 * the upload and after the delete, and the migration all work from: keys
 * with size, mtime and (for the archive) ETag, in restore order or name
 * order; the name policy on strict listings; the diff of two listings and
 * a listing's digest (what a resumed upload must match).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_path.h"
#include "jobs/job_int.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "zip/zipr.h"

void job_list_release(struct job_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Restore priority of an entry name (the key without "active/<id>/"):
 * what makes a space usable first (PROTOCOL.md), so that unarchive can
 * stream in archive order. */
static int restore_rank(const char *rel)
{
    if (strcmp(rel, "space-v1/space.json") == 0)
        return 0;
    if (strcmp(rel, "sila.md") == 0)
        return 1;
    if (strcmp(rel, "space-v1/secrets") == 0)
        return 2;
    if (strncmp(rel, "space-v1/ops/", 13) == 0)
        return 3;
    return 4;
}

/* The name policy refuses name: the listing fails, saying which key. */
static enum wk_code name_refused(const struct job_list *l, const char *key,
                                 const char *why, struct wk_err *err)
{
    char shown[160];

    if (l->flags & JOB_LIST_ARCHIVE) {
        wk_path_shown(shown, sizeof(shown), key, strlen(key));
        return wk_err_set(err, WK_E_INVAL,
                          "key '%s' cannot be archived: %s (rename or "
                          "delete it)",
                          shown, why);
    }
    wk_path_shown(shown, sizeof(shown), key + l->skip, strlen(key + l->skip));
    return wk_err_set(err, WK_E_INVAL,
                      "source file '%s' cannot be part of a space: %s", shown,
                      why);
}

static enum wk_code list_grow(struct job_list *l, struct wk_err *err)
{
    size_t ncap = l->cap ? l->cap * 2 : 256;
    void *v;

    if (l->n >= JOB_LIST_MAX_FILES)
        return (l->flags & JOB_LIST_ARCHIVE)
                   ? wk_err_set(err, WK_E_LIMIT,
                                "space has more than %u objects",
                                JOB_LIST_MAX_FILES)
                   : wk_err_set(err, WK_E_LIMIT, "more than %u files",
                                JOB_LIST_MAX_FILES);
    v = realloc(l->v, ncap * sizeof(*l->v));
    if (!v)
        return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
    l->v = v;
    l->cap = ncap;
    return WK_OK;
}

static enum wk_code list_cb(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    struct job_list *l = ud;
    bool strict = l->flags & JOB_LIST_STRICT;
    struct job_obj *o;
    size_t klen, elen = 0;
    enum wk_code rc;
    char *p;

    if (e->is_prefix)
        return WK_OK;
    klen = strlen(e->key);
    if (klen < l->skip || memcmp(e->key, l->prefix, l->skip) != 0) {
        /* a server that ignores the prefix: such a key is never archived
         * or copied under a made-up name, nor deleted */
        char shown[160];
        if (!strict) {
            l->foreign++;
            return WK_OK;
        }
        wk_path_shown(shown, sizeof(shown), e->key, klen);
        return wk_err_set(err, WK_E_CORRUPT,
                          "listing of '%s' returned key '%s', which is "
                          "outside it: the store ignores the prefix",
                          l->prefix, shown);
    }
    if (strict) {
        /* the one name policy, the restore's own: refused before anything
         * is written or deleted */
        char why[64];
        if (!zipr_name_valid(e->key + l->skip, why, sizeof(why)))
            return name_refused(l, e->key, why, err);
    }
    if (l->n == l->cap) {
        rc = list_grow(l, err);
        if (rc != WK_OK)
            return rc;
    }
    if (l->flags & JOB_LIST_ARCHIVE) {
        elen = e->etag ? strlen(e->etag) : 0;
        if (elen > JOB_LIST_ETAG_MAX)
            return wk_err_set(err, WK_E_LIMIT, "object '%s': etag of %zu bytes",
                              e->key, elen);
    }
    p = malloc(klen + elen + 2);
    if (!p)
        return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
    memcpy(p, e->key, klen + 1);
    if (elen)
        memcpy(p + klen + 1, e->etag, elen);
    p[klen + 1 + elen] = '\0';
    o = &l->v[l->n];
    o->key = p;
    o->name = p + l->skip;
    o->etag = p + klen + 1;
    o->size = e->size;
    o->mtime = e->mtime;
    o->rank = (l->flags & JOB_LIST_ARCHIVE) ? restore_rank(o->name) : 0;
    l->n++;
    l->total_bytes += e->size;
    if (l->n == 1 || e->mtime < l->oldest)
        l->oldest = e->mtime;
    return WK_OK;
}

static int obj_cmp(const void *a, const void *b)
{
    const struct job_obj *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* (every key of a listing holds its prefix: the name order is the key
 * order) */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct job_obj *)a)->name,
                  ((const struct job_obj *)b)->name);
}

static enum wk_code listed_twice(const struct job_list *l, const char *key,
                                 struct wk_err *err)
{
    char shown[160];

    if (l->flags & JOB_LIST_ARCHIVE) {
        wk_path_shown(shown, sizeof(shown), key, strlen(key));
        return wk_err_set(err, WK_E_CORRUPT,
                          "listing of '%s' returned key '%s' twice", l->prefix,
                          shown);
    }
    wk_path_shown(shown, sizeof(shown), key + l->skip, strlen(key + l->skip));
    return wk_err_set(err, WK_E_CORRUPT,
                      "listing of the source returned file '%s' twice", shown);
}

/* Sorted by obj_cmp. Strict: no key is listed twice (a buggy listing
 * would make an archive the restore refuses). */
enum wk_code job_list_load(struct store *st, const char *prefix, unsigned flags,
                           struct job_list *l, struct wk_err *err)
{
    enum wk_code rc;

    job_list_release(l);
    l->prefix = prefix;
    l->skip = strlen(prefix);
    l->flags = flags;
    rc = store_list(st, prefix, NULL, list_cb, l, err);
    if (rc == WK_OK && l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), obj_cmp);
    for (size_t i = 1; rc == WK_OK && (flags & JOB_LIST_STRICT) && i < l->n;
         i++)
        if (strcmp(l->v[i - 1].key, l->v[i].key) == 0)
            rc = listed_twice(l, l->v[i].key, err);
    return rc;
}

const struct job_obj *job_list_find(const struct job_list *l, const char *name)
{
    struct job_obj key;

    if (l->n == 0)
        return NULL;
    memset(&key, 0, sizeof(key));
    key.name = name;
    return bsearch(&key, l->v, l->n, sizeof(*l->v), name_cmp);
}

/* The same object version: a write changes the ETag (S3: the content's
 * MD5 or the multipart tag; fs: size and mtime in ns), and the size is
 * compared too because that is what the reads were checked against. */
static bool obj_same(const struct job_obj *a, const struct job_obj *b)
{
    return a->size == b->size && strcmp(a->etag, b->etag) == 0;
}

bool job_list_same(const struct job_list *was, const struct job_list *now,
                   struct job_list_diff *d)
{
    size_t i = 0, j = 0;

    memset(d, 0, sizeof(*d));
    while (i < was->n || j < now->n) {
        int c;
        if (i == was->n)
            c = 1;
        else if (j == now->n)
            c = -1;
        else
            c = obj_cmp(&was->v[i], &now->v[j]);
        if (c < 0) {
            d->removed++;
            if (!d->first)
                d->first = was->v[i].key;
            i++;
        } else if (c > 0) {
            d->added++;
            if (!d->first)
                d->first = now->v[j].key;
            j++;
        } else {
            if (!obj_same(&was->v[i], &now->v[j])) {
                d->changed++;
                if (!d->first)
                    d->first = now->v[j].key;
            }
            i++;
            j++;
        }
    }
    return d->added + d->changed + d->removed == 0;
}

/* An upload is resumed only for the very same listing. */
void job_list_digest(const struct job_list *l, char hex[65])
{
    struct store_sha256 *h = NULL;
    struct wk_err e;

    wk_err_clear(&e);
    hex[0] = '\0';
    if (store_sha256_new(&h, &e) != WK_OK)
        return;
    for (size_t i = 0; i < l->n; i++) {
        const struct job_obj *o = &l->v[i];
        const char *etag = o->etag ? o->etag : "";
        char sz[24];
        int n = snprintf(sz, sizeof(sz), "%llu\n", (unsigned long long)o->size);
        store_sha256_update(h, o->key, strlen(o->key) + 1);
        store_sha256_update(h, etag, strlen(etag) + 1);
        store_sha256_update(h, sz, (size_t)n);
    }
    store_sha256_final_hex(h, hex);
    store_sha256_free(h);
}
