/*
 * store_mem: an in-memory backend with the semantics of the others, for
 * unit tests of jobs. Objects live in an array sorted by key (strcmp, which
 * is UTF-8 byte order). Contents are immutable, reference-counted blobs so
 * that a get can stream without holding the lock while its sink runs (the
 * sink may call back into the store). Writers buffer in memory and appear
 * only on commit; abort_pending() cancels open writers the way S3's
 * AbortMultipartUpload does, so their commit then fails.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/store.h"
#include "storage/store_hash.h"

#define MEM_CHUNK_BYTES (64u * 1024u)

struct mem_blob {
    size_t refs; /* guarded by the store's lock */
    size_t len;
    unsigned char data[];
};

struct mem_obj {
    char *key;             /* owned */
    struct mem_blob *blob; /* owned (one reference) */
    int64_t mtime;
    char etag[33];
};

struct mem_writer;

struct mem_store {
    struct store base;
    pthread_mutex_t lock;
    struct mem_obj *objs; /* owned, sorted by key */
    size_t n, cap;
    struct mem_writer *pending; /* borrowed: open writers, linked */
};

struct mem_writer {
    struct store_writer base;
    struct mem_store *st; /* borrowed; outlives the writer */
    char *key;            /* owned */
    struct wk_buf data;
    bool aborted;  /* abort_pending() cancelled it */
    bool finished; /* committed or aborted: off the pending list */
    struct mem_writer *next, *prev; /* pending list, guarded by st->lock */
};

static const struct store_ops mem_ops;
static const struct store_writer_ops mem_writer_ops;

static void blob_unref(struct mem_store *st, struct mem_blob *b)
{
    bool last;

    if (!b)
        return;
    pthread_mutex_lock(&st->lock);
    last = --b->refs == 0;
    pthread_mutex_unlock(&st->lock);
    if (last)
        free(b);
}

/* Index of the first object whose key is >= key (lock held). */
static size_t lower_bound(const struct mem_store *st, const char *key)
{
    size_t lo = 0, hi = st->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(st->objs[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct mem_obj *find(struct mem_store *st, const char *key)
{
    size_t i = lower_bound(st, key);

    if (i < st->n && strcmp(st->objs[i].key, key) == 0)
        return &st->objs[i];
    return NULL;
}

static bool has_prefix(const char *s, const char *prefix, size_t plen)
{
    return strncmp(s, prefix, plen) == 0;
}

static enum wk_code check_key(const char *what, const char *key,
                              struct wk_err *err)
{
    if (!key || !store_key_valid(key))
        return wk_err_set(err, WK_E_INVAL, "%s '%s': invalid key", what,
                          key ? key : "");
    return WK_OK;
}

/* Insert or replace key with blob (takes the blob's reference). */
static enum wk_code install(struct mem_store *st, const char *key,
                            struct mem_blob *blob, struct wk_err *err)
{
    char hex[65];
    struct mem_obj *o;
    enum wk_code rc = WK_OK;

    store_sha256_hex(blob->data, blob->len, hex);
    pthread_mutex_lock(&st->lock);
    o = find(st, key);
    if (!o) {
        size_t i = lower_bound(st, key);
        char *k = strdup(key);

        if (!k) {
            rc = wk_err_set(err, WK_E_NOMEM, "put '%s': out of memory", key);
            goto out;
        }
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 16;
            struct mem_obj *v = realloc(st->objs, cap * sizeof(*v));
            if (!v) {
                free(k);
                rc =
                    wk_err_set(err, WK_E_NOMEM, "put '%s': out of memory", key);
                goto out;
            }
            st->objs = v;
            st->cap = cap;
        }
        memmove(&st->objs[i + 1], &st->objs[i],
                (st->n - i) * sizeof(st->objs[0]));
        st->n++;
        o = &st->objs[i];
        o->key = k;
        o->blob = NULL;
    }
    if (o->blob && --o->blob->refs == 0)
        free(o->blob);
    o->blob = blob;
    blob = NULL;
    o->mtime = (int64_t)time(NULL);
    /* An MD5-length change tag, like a single-part S3 ETag. */
    memcpy(o->etag, hex, 32);
    o->etag[32] = '\0';
out:
    pthread_mutex_unlock(&st->lock);
    free(blob); /* only on failure: never shared yet */
    return rc;
}

static enum wk_code new_blob(const char *key, const void *p, size_t n,
                             struct mem_blob **out, struct wk_err *err)
{
    struct mem_blob *b = malloc(sizeof(*b) + n);

    if (!b)
        return wk_err_set(err, WK_E_NOMEM, "put '%s': out of memory", key);
    b->refs = 1;
    b->len = n;
    if (n)
        memcpy(b->data, p, n);
    *out = b;
    return WK_OK;
}

/* One entry of a listing, copied out so the callback runs unlocked. */
struct mem_item {
    char *key; /* owned */
    struct store_entry e;
};

/* Next entry at or after cursor: strictly after it when after is set, and
 * past every key under it when it was a rolled-up prefix. found is false at
 * the end of the listing. Lock held. */
static enum wk_code next_item(struct mem_store *st, const char *prefix,
                              const char *delim, const char *cursor, bool after,
                              bool cursor_is_prefix, struct mem_item *it,
                              bool *found, struct wk_err *err)
{
    size_t plen = strlen(prefix);
    size_t dlen = delim ? strlen(delim) : 0;
    size_t i = lower_bound(st, cursor);
    const struct mem_obj *o;
    const char *d;
    size_t klen;

    if (after && i < st->n && strcmp(st->objs[i].key, cursor) == 0)
        i++;
    while (cursor_is_prefix && i < st->n &&
           has_prefix(st->objs[i].key, cursor, strlen(cursor)))
        i++;
    *found = false;
    if (i >= st->n || !has_prefix(st->objs[i].key, prefix, plen))
        return WK_OK;
    o = &st->objs[i];
    d = dlen ? strstr(o->key + plen, delim) : NULL;
    klen = d ? (size_t)(d - o->key) + dlen : strlen(o->key);
    it->key = malloc(klen + 1);
    if (!it->key)
        return wk_err_set(err, WK_E_NOMEM, "list '%s': out of memory", prefix);
    memcpy(it->key, o->key, klen);
    it->key[klen] = '\0';
    memset(&it->e, 0, sizeof(it->e));
    it->e.key = it->key;
    it->e.is_prefix = d != NULL;
    if (d) {
        it->e.etag = "";
    } else {
        it->e.size = o->blob->len;
        it->e.mtime = o->mtime;
        it->e.etag = o->etag; /* copied below */
    }
    *found = true;
    return WK_OK;
}

static enum wk_code mem_list_after(struct store *base, const char *prefix,
                                   const char *delimiter,
                                   const char *start_after, store_list_cb cb,
                                   void *ud, struct wk_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_item it = { NULL, { 0 } };
    char *cursor = NULL;
    char etag[33];
    bool found = true, after = false, cursor_is_prefix = false;
    enum wk_code rc = WK_OK;

    if (!prefix)
        prefix = "";
    if (delimiter && !*delimiter)
        delimiter = NULL;
    if (start_after && !*start_after)
        start_after = NULL;
    /* start at the later of the two: the search skips what is before */
    after = start_after && strcmp(start_after, prefix) >= 0;
    cursor = strdup(after ? start_after : prefix);
    if (!cursor)
        return wk_err_set(err, WK_E_NOMEM, "list '%s': out of memory", prefix);
    while (rc == WK_OK) {
        pthread_mutex_lock(&st->lock);
        rc = next_item(st, prefix, delimiter, cursor, after, cursor_is_prefix,
                       &it, &found, err);
        if (rc == WK_OK && found && !it.e.is_prefix) {
            memcpy(etag, it.e.etag, sizeof(etag));
            it.e.etag = etag;
        }
        pthread_mutex_unlock(&st->lock);
        if (rc != WK_OK || !found)
            break;
        /* a common prefix at or before start_after (keys above it roll up
         * into it) is not listed */
        if (!start_after || strcmp(it.key, start_after) > 0)
            rc = cb(&it.e, ud, err); /* unlocked: it may use the store */
        free(cursor);
        cursor = it.key;
        cursor_is_prefix = it.e.is_prefix;
        it.key = NULL;
        after = true;
    }
    free(it.key);
    free(cursor);
    return rc;
}

static enum wk_code mem_list(struct store *base, const char *prefix,
                             const char *delimiter, store_list_cb cb, void *ud,
                             struct wk_err *err)
{
    return mem_list_after(base, prefix, delimiter, NULL, cb, ud, err);
}

static enum wk_code mem_head(struct store *base, const char *key,
                             struct store_stat *out, struct wk_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    const struct mem_obj *o;
    enum wk_code rc = check_key("head", key, err);

    if (rc != WK_OK)
        return rc;
    pthread_mutex_lock(&st->lock);
    o = find(st, key);
    if (o) {
        memset(out, 0, sizeof(*out));
        out->size = o->blob->len;
        out->mtime = o->mtime;
        memcpy(out->etag, o->etag, sizeof(o->etag));
    }
    pthread_mutex_unlock(&st->lock);
    if (!o)
        return wk_err_set(err, WK_E_NOTFOUND, "head '%s': no such object", key);
    return WK_OK;
}

/* Take a reference to key's contents. */
static enum wk_code blob_get(struct mem_store *st, const char *key,
                             struct mem_blob **out, struct wk_err *err)
{
    struct mem_obj *o;

    pthread_mutex_lock(&st->lock);
    o = find(st, key);
    *out = o ? o->blob : NULL;
    if (o)
        o->blob->refs++;
    pthread_mutex_unlock(&st->lock);
    if (!o)
        return wk_err_set(err, WK_E_NOTFOUND, "get '%s': no such object", key);
    return WK_OK;
}

/* The bytes [offset, offset + len) must lie inside the object; a range past
 * the end means it changed since it was listed. */
static enum wk_code check_range(const char *key, uint64_t size, uint64_t offset,
                                uint64_t *len, struct wk_err *err)
{
    if (offset > size || (*len != UINT64_MAX && *len > size - offset))
        return wk_err_set(err, WK_E_CONFLICT,
                          "get '%s': range %llu+%llu is past the end of the "
                          "object (%llu bytes)",
                          key, (unsigned long long)offset,
                          (unsigned long long)*len, (unsigned long long)size);
    if (*len == UINT64_MAX)
        *len = size - offset;
    return WK_OK;
}

static enum wk_code mem_get(struct store *base, const char *key,
                            uint64_t offset, uint64_t len, store_sink_cb sink,
                            void *ud, struct wk_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_blob *b = NULL;
    enum wk_code rc = check_key("get", key, err);

    if (rc != WK_OK)
        return rc;
    rc = blob_get(st, key, &b, err);
    if (rc != WK_OK)
        goto out;
    rc = check_range(key, b->len, offset, &len, err);
    while (rc == WK_OK && len > 0) {
        size_t n = len < MEM_CHUNK_BYTES ? (size_t)len : MEM_CHUNK_BYTES;
        rc = sink(b->data + offset, n, ud, err);
        offset += n;
        len -= n;
    }
out:
    blob_unref(st, b);
    return rc;
}

static enum wk_code mem_put(struct store *base, const char *key, const void *p,
                            size_t n, struct wk_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_blob *b = NULL;
    enum wk_code rc = check_key("put", key, err);

    if (rc == WK_OK)
        rc = new_blob(key, p, n, &b, err);
    if (rc == WK_OK)
        rc = install(st, key, b, err);
    return rc;
}

/* One process: a process-wide lock makes head + put atomic enough. */
static pthread_mutex_t mem_cond_lock = PTHREAD_MUTEX_INITIALIZER;

static enum wk_code mem_put_if(struct store *base, const char *key,
                               const void *p, size_t n, const char *if_match,
                               char *etag_out, size_t etag_len,
                               struct wk_err *err)
{
    enum wk_code rc;
    pthread_mutex_lock(&mem_cond_lock);
    rc = store_put_if_headput(base, key, p, n, if_match, etag_out, etag_len,
                              err);
    pthread_mutex_unlock(&mem_cond_lock);
    return rc;
}

static enum wk_code mem_delete_if(struct store *base, const char *const *keys,
                                  const char *const *etags, size_t n,
                                  size_t *ndeleted, bool *kept,
                                  struct wk_err *err)
{
    enum wk_code rc;
    pthread_mutex_lock(&mem_cond_lock);
    rc = store_delete_if_serial(base, keys, etags, n, ndeleted, kept, err);
    pthread_mutex_unlock(&mem_cond_lock);
    return rc;
}

/* Take w off the pending list (lock held). */
static void unlink_writer(struct mem_writer *w)
{
    if (w->finished)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        w->st->pending = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->finished = true;
}

static enum wk_code mem_open_write(struct store *base, const char *key,
                                   const struct store_writer_opts *opts,
                                   struct store_writer **out,
                                   struct wk_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    struct mem_writer *w = NULL;
    enum wk_code rc = check_key("open write", key, err);

    (void)opts;
    *out = NULL;
    if (rc != WK_OK)
        return rc;
    w = calloc(1, sizeof(*w));
    if (!w || !(w->key = strdup(key))) {
        free(w);
        return wk_err_set(err, WK_E_NOMEM, "open write '%s': out of memory",
                          key);
    }
    w->base.ops = &mem_writer_ops;
    w->st = st;
    wk_buf_init(&w->data, SIZE_MAX);
    pthread_mutex_lock(&st->lock);
    w->next = st->pending;
    if (st->pending)
        st->pending->prev = w;
    st->pending = w;
    pthread_mutex_unlock(&st->lock);
    *out = &w->base;
    return WK_OK;
}

static enum wk_code mem_delete_many(struct store *base, const char *const *keys,
                                    size_t n, size_t *ndeleted,
                                    struct wk_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    enum wk_code first = WK_OK;
    size_t done = 0;

    for (size_t i = 0; i < n; i++) {
        struct mem_blob *b = NULL;
        size_t at;

        if (check_key("delete", keys[i], err) != WK_OK) {
            if (first == WK_OK)
                first = WK_E_INVAL;
            continue;
        }
        pthread_mutex_lock(&st->lock);
        at = lower_bound(st, keys[i]);
        if (at < st->n && strcmp(st->objs[at].key, keys[i]) == 0) {
            b = st->objs[at].blob;
            free(st->objs[at].key);
            memmove(&st->objs[at], &st->objs[at + 1],
                    (st->n - at - 1) * sizeof(st->objs[0]));
            st->n--;
            if (--b->refs != 0)
                b = NULL;
        }
        pthread_mutex_unlock(&st->lock);
        free(b);
        done++;
    }
    if (ndeleted)
        *ndeleted = done;
    return first;
}

static enum wk_code mem_abort_pending(struct store *base, const char *prefix,
                                      size_t *naborted, struct wk_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    size_t plen = prefix ? strlen(prefix) : 0;
    size_t count = 0;

    (void)err;
    pthread_mutex_lock(&st->lock);
    for (struct mem_writer *w = st->pending, *next; w; w = next) {
        next = w->next;
        if (plen && !has_prefix(w->key, prefix, plen))
            continue;
        unlink_writer(w);
        w->aborted = true;
        count++;
    }
    pthread_mutex_unlock(&st->lock);
    if (naborted)
        *naborted = count;
    return WK_OK;
}

static enum wk_code mem_count_pending(struct store *base, const char *prefix,
                                      size_t *npending, struct wk_err *err)
{
    struct mem_store *st = (struct mem_store *)base;
    size_t plen = prefix ? strlen(prefix) : 0;
    size_t count = 0;

    (void)err;
    pthread_mutex_lock(&st->lock);
    for (const struct mem_writer *w = st->pending; w; w = w->next)
        if (!plen || has_prefix(w->key, prefix, plen))
            count++;
    pthread_mutex_unlock(&st->lock);
    *npending = count;
    return WK_OK;
}

static void mem_free(struct store *base)
{
    struct mem_store *st = (struct mem_store *)base;

    /* Writers must be freed first (they borrow the store). */
    WK_ASSERT(st->pending == NULL);
    for (size_t i = 0; i < st->n; i++) {
        free(st->objs[i].key);
        if (--st->objs[i].blob->refs == 0)
            free(st->objs[i].blob);
    }
    free(st->objs);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static enum wk_code writer_state(const struct mem_writer *w, const char *what,
                                 struct wk_err *err)
{
    if (w->aborted)
        return wk_err_set(err, WK_E_NOTFOUND, "%s '%s': the upload was aborted",
                          what, w->key);
    if (w->finished)
        return wk_err_set(err, WK_E_INTERNAL,
                          "%s '%s': the writer is already committed", what,
                          w->key);
    return WK_OK;
}

static enum wk_code mem_writer_write(struct store_writer *base, const void *p,
                                     size_t n, struct wk_err *err)
{
    struct mem_writer *w = (struct mem_writer *)base;
    enum wk_code rc;

    pthread_mutex_lock(&w->st->lock);
    rc = writer_state(w, "write", err);
    pthread_mutex_unlock(&w->st->lock);
    if (rc == WK_OK)
        rc = wk_buf_append(&w->data, p, n, err);
    return rc;
}

static enum wk_code mem_writer_commit(struct store_writer *base,
                                      struct wk_err *err)
{
    struct mem_writer *w = (struct mem_writer *)base;
    struct mem_blob *b = NULL;
    enum wk_code rc;

    pthread_mutex_lock(&w->st->lock);
    rc = writer_state(w, "commit", err);
    if (rc == WK_OK)
        unlink_writer(w);
    pthread_mutex_unlock(&w->st->lock);
    if (rc == WK_OK)
        rc = new_blob(w->key, w->data.data, w->data.len, &b, err);
    if (rc == WK_OK)
        rc = install(w->st, w->key, b, err);
    wk_buf_release(&w->data);
    return rc;
}

static void mem_writer_free(struct store_writer *base)
{
    struct mem_writer *w = (struct mem_writer *)base;

    pthread_mutex_lock(&w->st->lock);
    unlink_writer(w);
    pthread_mutex_unlock(&w->st->lock);
    wk_buf_release(&w->data);
    free(w->key);
    free(w);
}

static const struct store_ops mem_ops = {
    .name = "mem",
    .list = mem_list,
    .list_after = mem_list_after,
    .head = mem_head,
    .get = mem_get,
    .get_many = store_get_many_serial,
    .put = mem_put,
    .put_if = mem_put_if,
    .put_many = store_put_many_serial,
    .open_write = mem_open_write,
    .delete_many = mem_delete_many,
    .delete_if = mem_delete_if,
    .abort_pending = mem_abort_pending,
    .count_pending = mem_count_pending,
    .free = mem_free,
};

static const struct store_writer_ops mem_writer_ops = {
    .name = "mem",
    .write = mem_writer_write,
    .commit = mem_writer_commit,
    .free = mem_writer_free,
};

enum wk_code store_mem_new(struct store **out, struct wk_err *err)
{
    struct mem_store *st = calloc(1, sizeof(*st));

    *out = NULL;
    if (!st)
        return wk_err_set(err, WK_E_NOMEM, "mem store: out of memory");
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st);
        return wk_err_set(err, WK_E_INTERNAL, "mem store: mutex init failed");
    }
    st->base.ops = &mem_ops;
    *out = &st->base;
    return WK_OK;
}
