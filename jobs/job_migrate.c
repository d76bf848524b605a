#include "jobs/job_migrate.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_path.h"
#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "jobs/job_int.h"
#include "jobs/job_archive.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "zip/zipr.h"
#include "storage/store.h"
#include "storage/store_hash.h"

#define MIG_SPACE_JSON_MAX (64u * 1024u) /* a bigger space.json is refused */
#define MIG_MARKER_MAX     (64u * 1024u)
#define MIG_KEY_MAX        1200u /* "active/<id>/" + a 1024-byte name */
#define MIG_KEEP_BUF_BYTES (256u * 1024u) /* larger slot buffers are freed */
#define MIG_MAX_FILES      (10u * 1000u * 1000u)
#define MIG_SPACE_JSON     "space-v1/space.json"

/* One file of a listing, by its name inside the space. */
struct mig_obj {
    char *name; /* owned */
    uint64_t size;
};

struct mig_list {
    struct mig_obj *v; /* owned; sorted by name once loaded */
    size_t n, cap;
    uint64_t total_bytes;
    const char *prefix; /* borrowed: the listed prefix */
    size_t skip;        /* its length: the part of a key that is no name */
    bool strict;        /* the source: every name must pass the name policy
                           and be listed once, else the job fails naming it
                           (what is copied is what archives and restores) */
    size_t foreign;     /* keys outside the prefix, skipped (not strict) */
};

enum mig_act {
    MIG_SKIP,    /* present with the same size, and a CAS blob */
    MIG_COPY,    /* missing, or another size */
    MIG_COMPARE, /* same size: the bytes decide */
};

/* One file of a batch. */
struct mig_slot {
    size_t obj; /* index into the source listing */
    enum mig_act act;
    struct wk_buf sbuf, dbuf; /* source bytes, destination bytes */
    char dkey[MIG_KEY_MAX];   /* "active/<id>/<name>" */
};

/* What a migration marker says (metadata/<id>.migrate.json). */
struct mig_marker {
    bool present;
    bool matches; /* same source, target active */
    bool done;    /* state "done" (else "copying") */
};

struct mig_run {
    struct job job; /* with the spaceId resolved */
    const struct job_ctx *ctx;
    struct store *src;                  /* borrowed */
    const char *label;                  /* the source, for messages */
    char prefix[JOB_SPACE_ID_MAX + 16]; /* "active/<id>/" */
    char mf_key[JOB_SPACE_ID_MAX + 32];
    char marker_key[JOB_SPACE_ID_MAX + 48];
    struct mig_list slist;    /* the source */
    struct mig_list dlist;    /* active/<id>/ before the run */
    bool write;               /* false: compare only (a finished migration) */
    struct store_sha256 *cas; /* owned */
    struct mig_slot *slots;   /* owned, nslots */
    size_t nslots;
    struct store_get *sget, *dget; /* owned, nslots each */
    struct store_put *puts;        /* owned, nslots */
    size_t copied, skipped;
    uint64_t copied_bytes;
    char differs[MIG_KEY_MAX]; /* compare only: the first file that
                                  differs, "" = none */
    struct prog prog;
    time_t started;
};

static bool cancelled(const struct job_ctx *ctx)
{
    return ctx->cancel && *ctx->cancel;
}

static time_t now_of(const struct job_ctx *ctx)
{
    return ctx->now ? ctx->now() : time(NULL);
}

/* ---- source URLs ---- */

static bool refuse(char *why, size_t whylen, const char *msg)
{
    if (why && whylen > 0)
        snprintf(why, whylen, "%s", msg);
    return false;
}

bool job_migrate_url_valid(const char *url, bool root, char *out, size_t outlen,
                           char *why, size_t whylen)
{
    size_t len = strlen(url), plen;
    const char *path;
    bool s3;

    if (len > JOB_SOURCE_MAX)
        return refuse(why, whylen, "URL longer than 1024 bytes");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c < 0x20 || c == 0x7f)
            return refuse(why, whylen, "control character in the URL");
        if (c == '\\')
            return refuse(why, whylen, "backslash in the URL");
        if (c == '%' || c == '?' || c == '#')
            return refuse(why, whylen,
                          "'%', '?' and '#' are not allowed (nothing is "
                          "decoded)");
    }
    if (strncmp(url, "file://", 7) == 0) {
        s3 = false;
        path = url + 7;
        if (path[0] != '/')
            return refuse(why, whylen,
                          "expected file:///absolute/path (no host)");
        path++;
    } else if (strncmp(url, "s3://", 5) == 0) {
        const char *b = url + 5, *slash = strchr(b, '/');
        size_t blen = slash ? (size_t)(slash - b) : strlen(b);
        s3 = true;
        if (blen < 3 || blen > 63)
            return refuse(why, whylen, "bad bucket name (3-63 of [a-z0-9.-])");
        for (size_t i = 0; i < blen; i++) {
            char c = b[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-'))
                return refuse(why, whylen,
                              "bad bucket name (3-63 of [a-z0-9.-])");
        }
        path = slash ? slash + 1 : b + blen;
    } else {
        return refuse(why, whylen,
                      "expected file:///absolute/path or "
                      "s3://bucket/prefix");
    }
    /* components of path, one trailing '/' allowed */
    plen = strlen(path);
    if (plen > 0 && path[plen - 1] == '/')
        plen--;
    if (plen == 0 && !(root && s3))
        return refuse(why, whylen,
                      s3 ? "no prefix: a space folder is never a whole bucket"
                         : "the root directory is not a space folder");
    for (size_t i = 0, seg = 0; i <= plen; i++) {
        if (i < plen && path[i] != '/')
            continue;
        if (plen == 0)
            break;
        if (i == seg)
            return refuse(why, whylen, "empty path component ('//')");
        if ((i - seg == 1 && path[seg] == '.') ||
            (i - seg == 2 && path[seg] == '.' && path[seg + 1] == '.'))
            return refuse(why, whylen, "'.' or '..' path component");
        seg = i + 1;
    }
    len = (size_t)(path - url) + plen;
    if (plen == 0 && url[len - 1] == '/')
        len--; /* "s3://bucket/" */
    if (len >= outlen)
        return refuse(why, whylen, "URL too long");
    memcpy(out, url, len);
    out[len] = '\0';
    return true;
}

/* A source inside the store's own areas would be read while the job
 * changes it (and overwrite would delete it). */
static bool source_in_store(const char *source, const char *store_url)
{
    static const char *const areas[] = { "active", "archived", "metadata" };
    size_t n = strlen(store_url);
    const char *rest;

    while (n > 0 && store_url[n - 1] == '/')
        n--;
    if (n == 0 || strncmp(source, store_url, n) != 0 || source[n] != '/')
        return false;
    rest = source + n + 1;
    for (size_t i = 0; i < sizeof(areas) / sizeof(areas[0]); i++) {
        size_t al = strlen(areas[i]);
        if (strncmp(rest, areas[i], al) == 0 &&
            (rest[al] == '/' || rest[al] == '\0'))
            return true;
    }
    return false;
}

/* ---- space.json ---- */

static enum wk_code stop_at_first(const struct store_entry *e, void *ud,
                                  struct wk_err *err)
{
    (void)e;
    (void)err;
    *(bool *)ud = true;
    return WK_E_LIMIT; /* enough: stops the listing */
}

/* Whether anything is stored under prefix. */
static enum wk_code has_any(struct store *st, const char *prefix, bool *found,
                            struct wk_err *err)
{
    struct wk_err lerr;
    enum wk_code rc;

    *found = false;
    wk_err_clear(&lerr);
    rc = store_list(st, prefix, NULL, stop_at_first, found, &lerr);
    if (rc == WK_OK || *found)
        return WK_OK;
    return wk_err_copy(err, &lerr);
}

/* The id in <base>space-v1/space.json of st ({"id":"<spaceId>"}); label
 * names the source in messages. A folder without it is refused. */
static enum wk_code read_space_id(struct store *st, const char *base,
                                  const char *label,
                                  char id[JOB_SPACE_ID_MAX + 1],
                                  struct wk_err *err)
{
    char key[MIG_KEY_MAX];
    struct wk_buf b;
    struct wk_err gerr;
    json_t *root = NULL, *v;
    bool found = false;
    enum wk_code rc;

    id[0] = '\0';
    wk_buf_init(&b, MIG_SPACE_JSON_MAX);
    wk_err_clear(&gerr);
    snprintf(key, sizeof(key), "%s" MIG_SPACE_JSON, base);
    rc = store_get_all(st, key, &b, &gerr);
    if (rc == WK_E_NOTFOUND) {
        snprintf(key, sizeof(key), "%sspace-v1/", base);
        rc = has_any(st, key, &found, err);
        if (rc == WK_OK)
            rc = wk_err_set(err, WK_E_INVAL,
                            found ? "source '%s' is not a Sila space: "
                                    "space-v1/space.json is missing"
                                  : "source '%s' is not a Sila space: it "
                                    "has no space-v1/ folder",
                            label);
        goto out;
    }
    if (rc == WK_E_LIMIT) {
        rc = wk_err_set(err, WK_E_INVAL,
                        "source '%s' is not a Sila space: "
                        "space-v1/space.json is larger than %u bytes",
                        label, MIG_SPACE_JSON_MAX);
        goto out;
    }
    if (rc != WK_OK) {
        wk_err_copy(err, &gerr);
        wk_err_prefix(err, "source '%s'", label);
        goto out;
    }
    root = json_loadb(wk_buf_cstr(&b), b.len, 0, NULL);
    v = json_is_object(root) ? json_object_get(root, "id") : NULL;
    if (!json_is_string(v) ||
        strlen(json_string_value(v)) != json_string_length(v) ||
        !job_space_id_valid(json_string_value(v))) {
        rc = wk_err_set(err, WK_E_INVAL,
                        "source '%s' is not a Sila space: "
                        "space-v1/space.json does not hold "
                        "{\"id\":\"<spaceId>\"}",
                        label);
        goto out;
    }
    snprintf(id, JOB_SPACE_ID_MAX + 1, "%s", json_string_value(v));
out:
    json_decref(root);
    wk_buf_release(&b);
    return rc;
}

/* ---- listings ---- */

static void list_release(struct mig_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static enum wk_code list_cb(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    struct mig_list *l = ud;
    const char *name;
    char shown[160];

    if (e->is_prefix)
        return WK_OK;
    if (strlen(e->key) < l->skip || memcmp(e->key, l->prefix, l->skip) != 0) {
        /* a server that ignores the prefix: never copied, never compared */
        if (!l->strict) {
            l->foreign++;
            return WK_OK;
        }
        wk_path_shown(shown, sizeof(shown), e->key, strlen(e->key));
        return wk_err_set(err, WK_E_CORRUPT,
                          "listing of '%s' returned key '%s', which is "
                          "outside it: the store ignores the prefix",
                          l->prefix, shown);
    }
    name = e->key + l->skip;
    if (l->strict) {
        /* the one name policy: every safe file is copied as it is */
        char why[64];
        if (!zipr_name_valid(name, why, sizeof(why))) {
            wk_path_shown(shown, sizeof(shown), name, strlen(name));
            return wk_err_set(err, WK_E_INVAL,
                              "source file '%s' cannot be part of a "
                              "space: %s",
                              shown, why);
        }
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        void *v;
        if (l->n >= MIG_MAX_FILES)
            return wk_err_set(err, WK_E_LIMIT, "more than %u files",
                              MIG_MAX_FILES);
        v = realloc(l->v, ncap * sizeof(*l->v));
        if (!v)
            return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
        l->v = v;
        l->cap = ncap;
    }
    l->v[l->n].name = strdup(name);
    if (!l->v[l->n].name)
        return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
    l->v[l->n].size = e->size;
    l->n++;
    l->total_bytes += e->size;
    return WK_OK;
}

static int obj_cmp(const void *a, const void *b)
{
    return strcmp(((const struct mig_obj *)a)->name,
                  ((const struct mig_obj *)b)->name);
}

static enum wk_code list_load(struct store *st, const char *prefix, bool strict,
                              struct mig_list *l, struct wk_err *err)
{
    enum wk_code rc;

    list_release(l);
    l->prefix = prefix;
    l->skip = strlen(prefix);
    l->strict = strict;
    rc = store_list(st, prefix, NULL, list_cb, l, err);
    if (rc == WK_OK && l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), obj_cmp);
    for (size_t i = 1; rc == WK_OK && strict && i < l->n; i++)
        if (strcmp(l->v[i - 1].name, l->v[i].name) == 0) {
            char shown[160];
            wk_path_shown(shown, sizeof(shown), l->v[i].name,
                          strlen(l->v[i].name));
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "listing of the source returned file '%s' twice",
                            shown);
        }
    return rc;
}

static const struct mig_obj *list_find(const struct mig_list *l,
                                       const char *name)
{
    struct mig_obj key = { (char *)(uintptr_t)name, 0 };
    if (l->n == 0)
        return NULL;
    return bsearch(&key, l->v, l->n, sizeof(*l->v), obj_cmp);
}

/* ---- the store's state of the space ---- */

/* The manifest, if any (*has false when there is none). */
static enum wk_code read_manifest(struct mig_run *r, bool *has, struct mf *m,
                                  struct wk_err *err)
{
    struct wk_buf b;
    struct wk_err gerr;
    enum wk_code rc;

    *has = false;
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&gerr);
    rc = store_get_all(r->ctx->store, r->mf_key, &b, &gerr);
    if (rc == WK_E_NOTFOUND) {
        rc = WK_OK;
        goto out;
    }
    if (rc != WK_OK) {
        wk_err_copy(err, &gerr);
        goto out;
    }
    rc = mf_parse(wk_buf_cstr(&b), b.len, m, err);
    if (rc != WK_OK) {
        wk_err_prefix(err, "existing manifest '%s'", r->mf_key);
        rc = WK_E_CORRUPT;
        err->code = rc;
        goto out;
    }
    *has = true;
out:
    wk_buf_release(&b);
    return rc;
}

static enum wk_code read_marker(struct mig_run *r, struct mig_marker *mk,
                                struct wk_err *err)
{
    struct wk_buf b;
    struct wk_err gerr;
    json_t *root = NULL, *src, *tgt, *state;
    enum wk_code rc;

    memset(mk, 0, sizeof(*mk));
    wk_buf_init(&b, MIG_MARKER_MAX);
    wk_err_clear(&gerr);
    rc = store_get_all(r->ctx->store, r->marker_key, &b, &gerr);
    if (rc == WK_E_NOTFOUND) {
        rc = WK_OK;
        goto out;
    }
    if (rc == WK_E_LIMIT) {
        rc = WK_OK; /* not ours: present, matching nothing */
        mk->present = true;
        goto out;
    }
    if (rc != WK_OK) {
        wk_err_copy(err, &gerr);
        goto out;
    }
    mk->present = true;
    root = json_loadb(wk_buf_cstr(&b), b.len, 0, NULL);
    src = json_object_get(root, "source");
    tgt = json_object_get(root, "target");
    state = json_object_get(root, "state");
    mk->matches = json_is_string(src) && json_is_string(tgt) &&
                  strcmp(json_string_value(src), r->job.source) == 0 &&
                  strcmp(json_string_value(tgt), "active") == 0;
    mk->done =
        json_is_string(state) && strcmp(json_string_value(state), "done") == 0;
out:
    json_decref(root);
    wk_buf_release(&b);
    return rc;
}

static enum wk_code write_marker(struct mig_run *r, const char *state,
                                 struct wk_err *err)
{
    char started[40], now[40];
    json_t *o = json_object();
    char *text = NULL;
    enum wk_code rc;

    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    wk_fmt_rfc3339(r->started, started, sizeof(started));
    wk_fmt_rfc3339(now_of(r->ctx), now, sizeof(now));
    json_object_set_new(o, "spaceId", json_string(r->job.space_id));
    json_object_set_new(o, "source", json_string(r->job.source));
    json_object_set_new(o, "target", json_string("active"));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "startedAt", json_string(started));
    json_object_set_new(o, "updatedAt", json_string(now));
    json_object_set_new(o, "files", json_integer((json_int_t)r->slist.n));
    json_object_set_new(o, "bytes",
                        json_integer((json_int_t)r->slist.total_bytes));
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
    else
        rc = store_put(r->ctx->store, r->marker_key, text, strlen(text), err);
    free(text);
    json_decref(o);
    return rc;
}

static void remove_marker(struct mig_run *r)
{
    const char *k = r->marker_key;
    size_t nd = 0;
    struct wk_err derr;

    wk_err_clear(&derr);
    if (store_delete_many(r->ctx->store, &k, 1, &nd, &derr) != WK_OK)
        WK_LOG(WK_LOG_WARN, "migrate.marker_kept", KV_STR("job_id", r->job.id),
               KV_STR("key", k), KV_STR("msg", derr.msg));
}

/* ---- copying ---- */

static enum wk_code first_failure(const struct store_get *reqs, size_t n,
                                  const struct wk_err *batch, const char *what,
                                  struct wk_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (reqs[i].err.code != WK_OK) {
            wk_err_copy(err, &reqs[i].err);
            wk_err_prefix(err, "%s", what);
            return reqs[i].err.code;
        }
    if (batch->code != WK_OK)
        return wk_err_copy(err, batch);
    return wk_err_set(err, WK_E_INTERNAL, "batch read failed");
}

static enum mig_act classify(const struct mig_run *r, const struct mig_obj *o)
{
    const struct mig_obj *d = list_find(&r->dlist, o->name);
    char want[65];

    if (!d || d->size != o->size)
        return MIG_COPY;
    /* a CAS blob's name is its hash: the same size is the same blob */
    if (job_cas_name(o->name, want))
        return MIG_SKIP;
    return MIG_COMPARE;
}

static enum wk_code check_cas(struct mig_run *r, const char *name,
                              const void *p, size_t n, struct wk_err *err)
{
    char want[65], got[65];

    if (!job_cas_name(name, want))
        return WK_OK;
    store_sha256_reset(r->cas);
    store_sha256_update(r->cas, p, n);
    store_sha256_final_hex(r->cas, got);
    if (strcmp(got, want) != 0)
        return wk_err_set(err, WK_E_CORRUPT,
                          "source file '%s': content hashes to %s, not its "
                          "name",
                          name, got);
    return WK_OK;
}

static void note_differs(struct mig_run *r, const char *name)
{
    snprintf(r->differs, sizeof(r->differs), "%s", name);
}

/* Fetch a batch of small files (and the destination's bytes where the
 * bytes decide), verify, and PUT what is missing or different. */
static enum wk_code run_batch(struct mig_run *r, size_t nb, struct wk_err *err)
{
    size_t ns = 0, nd = 0, np = 0;
    uint64_t put_bytes = 0;
    struct wk_err berr;
    enum wk_code rc = WK_OK;

    for (size_t i = 0; i < nb; i++) {
        struct mig_slot *sl = &r->slots[i];
        const struct mig_obj *o = &r->slist.v[sl->obj];
        wk_buf_reset(&sl->sbuf);
        wk_buf_reset(&sl->dbuf);
        if (sl->act == MIG_SKIP || o->size == 0)
            continue;
        memset(&r->sget[ns], 0, sizeof(r->sget[ns]));
        r->sget[ns].key = o->name;
        r->sget[ns].len = o->size;
        r->sget[ns].out = &sl->sbuf;
        ns++;
        if (sl->act == MIG_COMPARE) {
            memset(&r->dget[nd], 0, sizeof(r->dget[nd]));
            r->dget[nd].key = sl->dkey;
            r->dget[nd].len = o->size;
            r->dget[nd].out = &sl->dbuf;
            nd++;
        }
    }
    wk_err_clear(&berr);
    if (ns > 0 && store_get_many(r->src, r->sget, ns, &berr) != WK_OK)
        return first_failure(r->sget, ns, &berr, "reading the source", err);
    wk_err_clear(&berr);
    if (nd > 0 && store_get_many(r->ctx->store, r->dget, nd, &berr) != WK_OK)
        return first_failure(r->dget, nd, &berr, "reading active/", err);

    for (size_t i = 0; i < nb; i++) {
        struct mig_slot *sl = &r->slots[i];
        const struct mig_obj *o = &r->slist.v[sl->obj];
        bool same;

        if (sl->sbuf.len != (sl->act == MIG_SKIP ? 0 : o->size))
            return wk_err_set(err, WK_E_CONFLICT,
                              "source file '%s' changed while it was "
                              "migrated",
                              o->name);
        if (sl->act == MIG_COMPARE) {
            same = o->size == 0 ||
                   (sl->dbuf.len == sl->sbuf.len &&
                    memcmp(sl->dbuf.data, sl->sbuf.data, sl->sbuf.len) == 0);
            if (same) {
                sl->act = MIG_SKIP;
            } else if (!r->write) {
                note_differs(r, o->name);
                return WK_OK;
            } else {
                sl->act = MIG_COPY;
            }
        }
        if (sl->act == MIG_SKIP) {
            r->skipped++;
            continue;
        }
        rc = check_cas(r, o->name, sl->sbuf.data ? sl->sbuf.data : "",
                       sl->sbuf.len, err);
        if (rc != WK_OK)
            return rc;
        memset(&r->puts[np], 0, sizeof(r->puts[np]));
        r->puts[np].key = sl->dkey;
        r->puts[np].data = sl->sbuf.data ? sl->sbuf.data : "";
        r->puts[np].len = sl->sbuf.len;
        put_bytes += sl->sbuf.len;
        np++;
    }
    if (np > 0) {
        wk_err_clear(&berr);
        rc = store_put_many(r->ctx->store, r->puts, np, &berr);
        if (rc != WK_OK) {
            for (size_t i = 0; i < np; i++)
                if (r->puts[i].err.code != WK_OK)
                    return wk_err_copy(err, &r->puts[i].err);
            return wk_err_copy(err, &berr);
        }
        r->copied += np;
        r->copied_bytes += put_bytes;
    }
    for (size_t i = 0; i < nb; i++) {
        const struct mig_obj *o = &r->slist.v[r->slots[i].obj];
        r->prog.st.bytes_done += o->size;
        r->prog.st.files_done++;
        if (r->slots[i].sbuf.cap > MIG_KEEP_BUF_BYTES)
            wk_buf_release(&r->slots[i].sbuf);
        if (r->slots[i].dbuf.cap > MIG_KEEP_BUF_BYTES)
            wk_buf_release(&r->slots[i].dbuf);
    }
    prog_update(&r->prog, false);
    return WK_OK;
}

/* One range of key in st into b (exactly len bytes). */
static enum wk_code get_range(struct store *st, const char *key, uint64_t off,
                              uint64_t len, struct wk_buf *b, const char *what,
                              struct wk_err *err)
{
    struct store_get g;
    struct wk_err berr;

    wk_buf_reset(b);
    memset(&g, 0, sizeof(g));
    g.key = key;
    g.offset = off;
    g.len = len;
    g.out = b;
    wk_err_clear(&berr);
    if (store_get_many(st, &g, 1, &berr) != WK_OK)
        return first_failure(&g, 1, &berr, what, err);
    if (b->len != len)
        return wk_err_set(err, WK_E_CONFLICT,
                          "%s: '%s' changed while it was migrated", what, key);
    return WK_OK;
}

/* A file bigger than one GET: compared and copied in chunk_bytes ranges,
 * streamed through a writer (multipart on S3), committed only once its
 * CAS hash (if it is a blob) was verified. */
static enum wk_code run_big(struct mig_run *r, size_t obj, enum mig_act act,
                            struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    const struct mig_obj *o = &r->slist.v[obj];
    struct mig_slot *sl = &r->slots[0];
    struct store_writer *w = NULL;
    struct store_writer_opts wo;
    char want[65], got[65];
    bool is_cas = job_cas_name(o->name, want);
    enum wk_code rc = WK_OK;

    if ((size_t)snprintf(sl->dkey, sizeof(sl->dkey), "%s%s", r->prefix,
                         o->name) >= sizeof(sl->dkey))
        return wk_err_set(err, WK_E_INVAL,
                          "source file '%.200s': name too long", o->name);
    if (act == MIG_COMPARE) {
        bool same = true;
        for (uint64_t off = 0; off < o->size && same; off += cfg->chunk_bytes) {
            uint64_t len = o->size - off;
            if (len > cfg->chunk_bytes)
                len = cfg->chunk_bytes;
            if (cancelled(r->ctx))
                return wk_err_set(err, WK_E_CANCELLED, "migrate cancelled");
            rc = get_range(r->src, o->name, off, len, &sl->sbuf,
                           "reading the source", err);
            if (rc == WK_OK)
                rc = get_range(r->ctx->store, sl->dkey, off, len, &sl->dbuf,
                               "reading active/", err);
            if (rc != WK_OK)
                goto out;
            same = memcmp(sl->sbuf.data, sl->dbuf.data, (size_t)len) == 0;
        }
        if (same) {
            r->skipped++;
            r->prog.st.bytes_done += o->size;
            goto out;
        }
        act = MIG_COPY;
    }
    if (act == MIG_SKIP) {
        r->skipped++;
        r->prog.st.bytes_done += o->size;
        goto out;
    }
    if (!r->write) {
        note_differs(r, o->name);
        goto out;
    }
    memset(&wo, 0, sizeof(wo));
    wo.part_bytes = job_part_bytes(o->size, cfg->part_bytes);
    wo.parts_in_flight = cfg->parts_in_flight;
    rc = store_open_write(r->ctx->store, sl->dkey, &wo, &w, err);
    if (rc != WK_OK)
        goto out;
    if (is_cas)
        store_sha256_reset(r->cas);
    for (uint64_t off = 0; off < o->size; off += cfg->chunk_bytes) {
        uint64_t len = o->size - off;
        if (len > cfg->chunk_bytes)
            len = cfg->chunk_bytes;
        if (cancelled(r->ctx)) {
            rc = wk_err_set(err, WK_E_CANCELLED, "migrate cancelled");
            goto out;
        }
        rc = get_range(r->src, o->name, off, len, &sl->sbuf,
                       "reading the source", err);
        if (rc == WK_OK && is_cas)
            store_sha256_update(r->cas, sl->sbuf.data, sl->sbuf.len);
        if (rc == WK_OK)
            rc = store_writer_write(w, sl->sbuf.data, sl->sbuf.len, err);
        if (rc != WK_OK)
            goto out;
        r->prog.st.bytes_done += len;
        prog_update(&r->prog, false);
    }
    if (is_cas) {
        store_sha256_final_hex(r->cas, got);
        if (strcmp(got, want) != 0) {
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "source file '%s': content hashes to %s, not its "
                            "name",
                            o->name, got);
            goto out; /* freeing the writer drops the upload */
        }
    }
    rc = store_writer_commit(w, err);
    if (rc != WK_OK)
        goto out;
    r->copied++;
    r->copied_bytes += o->size;
out:
    store_writer_free(w);
    if (rc == WK_OK && !r->differs[0])
        r->prog.st.files_done++;
    wk_buf_release(&sl->sbuf);
    wk_buf_release(&sl->dbuf);
    return rc;
}

/* Every source file to active/<id>/, space-v1/space.json last (a partial
 * copy never looks like a space); when !r->write, only compare and stop
 * at the first difference (r->differs). */
static enum wk_code copy_all(struct mig_run *r, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    size_t n = r->slist.n, k = 0, *order = NULL, no = 0;
    enum wk_code rc = WK_OK;

    order = calloc(n ? n : 1, sizeof(*order));
    if (!order)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (strcmp(r->slist.v[i].name, MIG_SPACE_JSON) != 0)
            order[no++] = i;
    for (size_t i = 0; i < n; i++)
        if (strcmp(r->slist.v[i].name, MIG_SPACE_JSON) == 0)
            order[no++] = i;

    while (k < no && rc == WK_OK && !r->differs[0]) {
        size_t nb = 0;
        uint64_t bytes = 0;

        if (cancelled(r->ctx)) {
            rc = wk_err_set(err, WK_E_CANCELLED, "migrate cancelled");
            break;
        }
        while (k < no && nb < r->nslots) {
            const struct mig_obj *o = &r->slist.v[order[k]];
            enum mig_act act = classify(r, o);
            uint64_t cost = act == MIG_COPY      ? o->size
                            : act == MIG_COMPARE ? 2 * o->size
                                                 : 0;
            struct mig_slot *sl;

            if (!r->write && act == MIG_COPY) {
                note_differs(r, o->name);
                break;
            }
            if (o->size > cfg->chunk_bytes) {
                if (nb == 0) {
                    rc = run_big(r, order[k], act, err);
                    k++;
                }
                break;
            }
            if (nb > 0 && bytes + cost > cfg->window_bytes)
                break;
            sl = &r->slots[nb];
            if ((size_t)snprintf(sl->dkey, sizeof(sl->dkey), "%s%s", r->prefix,
                                 o->name) >= sizeof(sl->dkey)) {
                rc = wk_err_set(err, WK_E_INVAL,
                                "source file '%.200s': name too long", o->name);
                break;
            }
            sl->obj = order[k];
            sl->act = act;
            nb++;
            bytes += cost;
            k++;
        }
        if (rc == WK_OK && nb > 0 && !r->differs[0])
            rc = run_batch(r, nb, err);
    }
    free(order);
    return rc;
}

/* Overwrite: objects under active/<id>/ that the source does not have. */
static enum wk_code delete_extras(struct mig_run *r, size_t *ndeleted,
                                  struct wk_err *err)
{
    char **keys = NULL;
    size_t nk = 0, nd = 0;
    enum wk_code rc = WK_OK;

    *ndeleted = 0;
    keys = calloc(r->dlist.n ? r->dlist.n : 1, sizeof(*keys));
    if (!keys)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < r->dlist.n; i++) {
        const char *name = r->dlist.v[i].name;
        size_t len = strlen(r->prefix) + strlen(name) + 1;
        if (list_find(&r->slist, name))
            continue;
        keys[nk] = malloc(len);
        if (!keys[nk]) {
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
            goto out;
        }
        snprintf(keys[nk], len, "%s%s", r->prefix, name);
        nk++;
    }
    if (nk > 0)
        rc = store_delete_many(r->ctx->store, (const char *const *)keys, nk,
                               &nd, err);
    *ndeleted = nd;
out:
    for (size_t i = 0; i < nk; i++)
        free(keys[i]);
    free(keys);
    return rc;
}

/* Overwrite with target archived: the source replaces what is under
 * active/<id>/ (listed again now). */
static enum wk_code delete_active(struct mig_run *r, size_t *ndeleted,
                                  struct wk_err *err)
{
    struct mig_list now;
    char **keys = NULL;
    size_t nk = 0, nd = 0;
    enum wk_code rc;

    memset(&now, 0, sizeof(now));
    *ndeleted = 0;
    rc = list_load(r->ctx->store, r->prefix, false, &now, err);
    if (rc != WK_OK || now.n == 0)
        goto out;
    keys = calloc(now.n, sizeof(*keys));
    if (!keys) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    for (; nk < now.n; nk++) {
        size_t len = strlen(r->prefix) + strlen(now.v[nk].name) + 1;
        keys[nk] = malloc(len);
        if (!keys[nk]) {
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
            goto out;
        }
        snprintf(keys[nk], len, "%s%s", r->prefix, now.v[nk].name);
    }
    rc = store_delete_many(r->ctx->store, (const char *const *)keys, nk, &nd,
                           err);
    *ndeleted = nd;
out:
    for (size_t i = 0; i < nk; i++)
        free(keys[i]);
    free(keys);
    list_release(&now);
    return rc;
}

static enum wk_code alloc_slots(struct mig_run *r, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;

    r->nslots = cfg->window_objects ? cfg->window_objects : 1;
    r->slots = calloc(r->nslots, sizeof(*r->slots));
    r->sget = calloc(r->nslots, sizeof(*r->sget));
    r->dget = calloc(r->nslots, sizeof(*r->dget));
    r->puts = calloc(r->nslots, sizeof(*r->puts));
    if (!r->slots || !r->sget || !r->dget || !r->puts)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < r->nslots; i++) {
        wk_buf_init(&r->slots[i].sbuf, cfg->chunk_bytes);
        wk_buf_init(&r->slots[i].dbuf, cfg->chunk_bytes);
    }
    return WK_OK;
}

static void free_slots(struct mig_run *r)
{
    if (r->slots)
        for (size_t i = 0; i < r->nslots; i++) {
            wk_buf_release(&r->slots[i].sbuf);
            wk_buf_release(&r->slots[i].dbuf);
        }
    free(r->slots);
    free(r->sget);
    free(r->dget);
    free(r->puts);
}

/* ---- results ---- */

static json_t *result_base(const struct mig_run *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "spaceId", json_string(r->job.space_id));
    json_object_set_new(o, "target",
                        json_string(r->job.target == JOB_TARGET_ARCHIVED
                                        ? "archived"
                                        : "active"));
    json_object_set_new(o, "source", json_string(r->job.source));
    return o;
}

static void prog_done(struct prog *p)
{
    p->st.phase = "done";
    p->st.bytes_done = p->st.bytes_total;
    p->st.files_done = p->st.files_total;
    p->st.progress = 100;
    prog_update(p, true);
}

/* Already in the store and not ours to change: say so, succeed. */
static enum wk_code report_exists(struct mig_run *r, const char *state,
                                  struct wk_buf *result, struct wk_err *err)
{
    json_t *o = json_object();
    enum wk_code rc;

    WK_LOG(WK_LOG_INFO, "migrate.skipped", KV_STR("job_id", r->job.id),
           KV_STR("space_id", r->job.space_id), KV_STR("reason", "exists"),
           KV_STR("state", state), KV_STR("differs", r->differs));
    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    json_object_set_new(o, "skipped", json_string("exists"));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "spaceId", json_string(r->job.space_id));
    json_object_set_new(o, "target",
                        json_string(r->job.target == JOB_TARGET_ARCHIVED
                                        ? "archived"
                                        : "active"));
    if (r->differs[0])
        json_object_set_new(o, "differs", json_string(r->differs));
    rc = job_result_take(result, o, err);
    if (rc == WK_OK)
        prog_done(&r->prog);
    return rc;
}

/* ---- the two targets ---- */

static enum wk_code to_archived(struct mig_run *r, bool has_mf,
                                const struct mf *m, struct wk_buf *result,
                                struct wk_err *err)
{
    struct job_archive_src as;
    struct job_archive_out ao;
    size_t deleted = 0;
    json_t *o;
    enum wk_code rc;

    if (!r->job.overwrite && (has_mf || r->dlist.n > 0))
        return report_exists(r, has_mf ? mf_state_name(m->state) : "active",
                             result, err);
    as.store = r->src;
    as.prefix = "";
    as.verify_cas = true;
    rc = job_archive_from(&r->job, r->ctx, &as, &ao, err);
    if (rc != WK_OK)
        return rc;
    /* from here on the space is the archive */
    remove_marker(r);
    if (r->job.overwrite && r->dlist.n > 0) {
        rc = delete_active(r, &deleted, err);
        if (rc != WK_OK) {
            wk_err_prefix(err,
                          "archive and manifest are written, but deleting "
                          "the objects under '%s' failed",
                          r->prefix);
            return rc;
        }
    }
    WK_LOG(WK_LOG_INFO, "migrate.archived", KV_STR("job_id", r->job.id),
           KV_STR("space_id", r->job.space_id),
           KV_STR("archive_key", ao.archive_key),
           KV_INT("files", ao.file_count), KV_INT("deleted", deleted));
    o = result_base(r);
    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    json_object_set_new(o, "files", json_integer((json_int_t)ao.file_count));
    json_object_set_new(o, "bytes",
                        json_integer((json_int_t)ao.uncompressed_size));
    json_object_set_new(o, "skipped", json_integer(0));
    json_object_set_new(o, "archiveKey", json_string(ao.archive_key));
    json_object_set_new(o, "manifestKey", json_string(ao.manifest_key));
    json_object_set_new(o, "checksum", json_string(ao.checksum));
    json_object_set_new(o, "size", json_integer((json_int_t)ao.size));
    /* every safe file is migrated: nothing is ignored any more (the field
     * stays for clients that read it) */
    json_object_set_new(o, "ignored", json_integer(0));
    if (r->job.overwrite)
        json_object_set_new(o, "deleted", json_integer((json_int_t)deleted));
    rc = job_result_take(result, o, err);
    if (rc == WK_OK)
        prog_done(&r->prog);
    return rc;
}

static enum wk_code to_active(struct mig_run *r, bool has_mf, struct mf *m,
                              struct wk_buf *result, struct wk_err *err)
{
    struct mig_marker mk;
    size_t deleted = 0, naborted = 0;
    json_t *o;
    enum wk_code rc;

    rc = read_marker(r, &mk, err);
    if (rc != WK_OK)
        return rc;
    if (r->job.overwrite) {
        r->write = true;
    } else if (has_mf && mf_in_archive(m)) {
        return report_exists(r, "archived", result, err);
    } else if (mk.matches && !mk.done && !has_mf) {
        r->write = true; /* resume an interrupted copy */
    } else if (mk.matches && mk.done) {
        r->write = false; /* done before: compare only */
    } else if (has_mf || r->dlist.n > 0) {
        return report_exists(r, "active", result, err);
    } else {
        r->write = true;
    }

    rc = list_load(r->src, "", true, &r->slist, err);
    if (rc != WK_OK)
        return rc;
    if (r->write) {
        /* uploads left open by a run that died */
        rc = store_abort_pending(r->ctx->store, r->prefix, &naborted, err);
        if (rc == WK_OK)
            rc = write_marker(r, "copying", err);
        if (rc != WK_OK)
            return rc;
    }
    r->prog.st.phase = r->write ? "copying" : "comparing";
    r->prog.st.bytes_total = r->slist.total_bytes;
    r->prog.st.files_total = r->slist.n;
    prog_update(&r->prog, true);
    WK_LOG(WK_LOG_INFO, "migrate.started", KV_STR("job_id", r->job.id),
           KV_STR("space_id", r->job.space_id), KV_STR("target", "active"),
           KV_INT("files", r->slist.n), KV_INT("bytes", r->slist.total_bytes),
           KV_INT("present", r->dlist.n), KV_BOOL("write", r->write),
           KV_INT("foreign", r->slist.foreign));
    rc = alloc_slots(r, err);
    if (rc == WK_OK)
        rc = store_sha256_new(&r->cas, err);
    if (rc == WK_OK)
        rc = copy_all(r, err);
    if (rc != WK_OK)
        return rc;
    if (r->differs[0])
        return report_exists(r, "active", result, err);

    if (r->write) {
        r->prog.st.phase = "finishing";
        prog_update(&r->prog, true);
        if (r->job.overwrite) {
            rc = delete_extras(r, &deleted, err);
            if (rc == WK_OK && has_mf && m->state != MF_ACTIVE) {
                /* the source is the space now; its archive becomes
                 * history at the next archive */
                struct wk_buf mb;
                wk_buf_init(&mb, 1u << 20);
                m->state = MF_ACTIVE;
                m->restored_at = now_of(r->ctx);
                rc = mf_to_json(m, &mb, err);
                if (rc == WK_OK)
                    rc = store_put(r->ctx->store, r->mf_key, mb.data, mb.len,
                                   err);
                wk_buf_release(&mb);
            }
            if (rc != WK_OK)
                return rc;
        }
        rc = write_marker(r, "done", err);
        if (rc != WK_OK)
            return rc;
    }
    WK_LOG(WK_LOG_INFO, "migrate.copied", KV_STR("job_id", r->job.id),
           KV_STR("space_id", r->job.space_id), KV_INT("files", r->copied),
           KV_INT("bytes", r->copied_bytes), KV_INT("skipped", r->skipped),
           KV_INT("deleted", deleted));
    o = result_base(r);
    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    json_object_set_new(o, "files", json_integer((json_int_t)r->copied));
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->copied_bytes));
    json_object_set_new(o, "skipped", json_integer((json_int_t)r->skipped));
    json_object_set_new(o, "totalFiles", json_integer((json_int_t)r->slist.n));
    json_object_set_new(o, "totalBytes",
                        json_integer((json_int_t)r->slist.total_bytes));
    json_object_set_new(o, "ignored", json_integer(0)); /* see to_archived() */
    if (r->job.overwrite)
        json_object_set_new(o, "deleted", json_integer((json_int_t)deleted));
    rc = job_result_take(result, o, err);
    if (rc == WK_OK)
        prog_done(&r->prog);
    return rc;
}

/* ---- entry points ---- */

enum wk_code job_migrate_from(const struct job *job, const struct job_ctx *ctx,
                              struct store *src, struct wk_buf *result,
                              struct wk_err *err)
{
    struct mig_run *r = NULL;
    struct mf *m = NULL;
    char id[JOB_SPACE_ID_MAX + 1];
    bool has_mf = false;
    enum wk_code rc;

    r = calloc(1, sizeof(*r));
    m = calloc(1, sizeof(*m));
    if (!r || !m) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    r->job = *job;
    r->ctx = ctx;
    r->src = src;
    r->label = job->source[0] ? job->source : "(source)";
    r->started = now_of(ctx);
    prog_init(&r->prog, ctx->sink);
    r->prog.st.phase = "listing";
    prog_update(&r->prog, true);

    if (job->type != JOB_MIGRATE) {
        rc = wk_err_set(err, WK_E_INTERNAL, "not a migrate job");
        goto out;
    }
    rc = read_space_id(src, "", r->label, id, err);
    if (rc != WK_OK)
        goto out;
    if (!r->job.space_id[0]) {
        snprintf(r->job.space_id, sizeof(r->job.space_id), "%s", id);
    } else if (strcmp(id, r->job.space_id) != 0) {
        rc = wk_err_set(err, WK_E_INVAL,
                        "source '%s' holds space '%s' (space-v1/space.json), "
                        "not the job's spaceId '%s'",
                        r->label, id, r->job.space_id);
        goto out;
    }
    snprintf(r->prefix, sizeof(r->prefix), "active/%s/", r->job.space_id);
    mf_key(r->job.space_id, r->mf_key, sizeof(r->mf_key));
    snprintf(r->marker_key, sizeof(r->marker_key), "metadata/%s.migrate.json",
             r->job.space_id);

    rc = read_manifest(r, &has_mf, m, err);
    if (rc == WK_OK)
        rc = list_load(ctx->store, r->prefix, false, &r->dlist, err);
    if (rc != WK_OK)
        goto out;
    if (r->job.target == JOB_TARGET_ARCHIVED)
        rc = to_archived(r, has_mf, m, result, err);
    else
        rc = to_active(r, has_mf, m, result, err);
out:
    if (rc != WK_OK && r)
        WK_LOG(WK_LOG_INFO, "migrate.failed", KV_STR("job_id", job->id),
               KV_STR("space_id", r->job.space_id), KV_STR("source", r->label),
               KV_STR("msg", err ? err->msg : ""));
    if (r) {
        list_release(&r->slist);
        list_release(&r->dlist);
        free_slots(r);
        store_sha256_free(r->cas);
    }
    free(r);
    free(m);
    return rc;
}

/* Open url with opts (or options from the environment when opts is NULL),
 * with the source's own endpoint and credentials when SILA_SOURCE_* say
 * so (another S3 service, another account). */
static enum wk_code open_source(const char *url, const struct store_opts *opts,
                                struct store **out, struct wk_err *err)
{
    struct store_opts *own = calloc(1, sizeof(*own));
    enum wk_code rc = WK_OK;

    *out = NULL;
    if (!own)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    if (opts)
        *own = *opts;
    else
        rc = store_opts_from_env(own, err);
    if (rc == WK_OK)
        store_opts_source_env(own);
    if (rc == WK_OK)
        rc = store_open_url(url, own, out, err);
    if (rc != WK_OK)
        wk_err_prefix(err, "source '%s'", url);
    free(own);
    return rc;
}

enum wk_code job_migrate_run(const struct job *job, const struct job_ctx *ctx,
                             struct wk_buf *result, struct wk_err *err)
{
    struct store *src = NULL;
    enum wk_code rc;

    if (ctx->store_url && source_in_store(job->source, ctx->store_url))
        return wk_err_set(err, WK_E_INVAL,
                          "source '%s' is inside this store's active/, "
                          "archived/ or metadata/: migrate from another "
                          "place",
                          job->source);
    rc = open_source(job->source, ctx->store_opts, &src, err);
    if (rc == WK_OK)
        rc = job_migrate_from(job, ctx, src, result, err);
    store_free(src);
    return rc;
}

enum wk_code job_migrate_resolve(struct job *job, const struct store_opts *opts,
                                 struct wk_err *err)
{
    struct store *src = NULL;
    enum wk_code rc;

    if (job->type != JOB_MIGRATE || job->space_id[0])
        return WK_OK;
    rc = open_source(job->source, opts, &src, err);
    if (rc == WK_OK)
        rc = read_space_id(src, "", job->source, job->space_id, err);
    store_free(src);
    return rc;
}

/* ---- migrate-all ---- */

struct name_list {
    char **v; /* owned */
    size_t n, cap;
};

static enum wk_code names_cb(const struct store_entry *e, void *ud,
                             struct wk_err *err)
{
    struct name_list *nl = ud;
    size_t len = strlen(e->key);

    if (!e->is_prefix || len < 2)
        return WK_OK; /* plain files under the root are not spaces */
    if (nl->n == nl->cap) {
        size_t ncap = nl->cap ? nl->cap * 2 : 64;
        char **v = realloc(nl->v, ncap * sizeof(*v));
        if (!v)
            return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
        nl->v = v;
        nl->cap = ncap;
    }
    nl->v[nl->n] = strndup(e->key, len - 1); /* without the '/' */
    if (!nl->v[nl->n])
        return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
    nl->n++;
    return WK_OK;
}

static void check_folder(struct store *root, const char *root_url,
                         struct job_migrate_space *s)
{
    char base[MIG_KEY_MAX], id[JOB_SPACE_ID_MAX + 1];
    size_t len = strlen(root_url) + 1 + strlen(s->name) + 1;
    struct wk_err e;

    wk_err_clear(&e);
    s->source = malloc(len);
    if (!s->source) {
        s->code = WK_E_NOMEM;
        snprintf(s->error, sizeof(s->error), "out of memory");
        return;
    }
    snprintf(s->source, len, "%s/%s", root_url, s->name);
    if (!job_space_id_valid(s->name)) {
        s->code = WK_E_INVAL;
        snprintf(s->error, sizeof(s->error),
                 "folder name '%.100s' is not a spaceId (1-128 of "
                 "[A-Za-z0-9._-])",
                 s->name);
        return;
    }
    snprintf(s->space_id, sizeof(s->space_id), "%s", s->name);
    if (len - 1 > JOB_SOURCE_MAX) {
        s->code = WK_E_INVAL;
        snprintf(s->error, sizeof(s->error), "URL longer than %u bytes",
                 JOB_SOURCE_MAX);
        return;
    }
    snprintf(base, sizeof(base), "%s/", s->name);
    s->code = read_space_id(root, base, s->source, id, &e);
    if (s->code == WK_OK && strcmp(id, s->name) != 0) {
        s->code = wk_err_set(&e, WK_E_INVAL,
                             "space-v1/space.json holds id '%s', not the "
                             "folder's name",
                             id);
    }
    if (s->code != WK_OK)
        snprintf(s->error, sizeof(s->error), "%s", e.msg);
}

enum wk_code job_migrate_list_spaces(const char *root_url,
                                     const struct store_opts *opts,
                                     struct job_migrate_list *out,
                                     struct wk_err *err)
{
    char norm[JOB_SOURCE_MAX + 1], why[160];
    struct store *root = NULL;
    struct name_list nl = { NULL, 0, 0 };
    enum wk_code rc;

    memset(out, 0, sizeof(*out));
    if (!job_migrate_url_valid(root_url, true, norm, sizeof(norm), why,
                               sizeof(why)))
        return wk_err_set(err, WK_E_INVAL, "migrate root '%.200s': %s",
                          root_url, why);
    rc = open_source(norm, opts, &root, err);
    if (rc == WK_OK)
        rc = store_list(root, "", "/", names_cb, &nl, err);
    if (rc != WK_OK)
        goto out;
    out->v = calloc(nl.n ? nl.n : 1, sizeof(*out->v));
    if (!out->v) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    out->cap = nl.n;
    for (size_t i = 0; i < nl.n; i++) {
        struct job_migrate_space *s = &out->v[out->n++];
        s->name = nl.v[i];
        nl.v[i] = NULL;
        check_folder(root, norm, s);
        if (s->code == WK_OK)
            out->ok++;
        else
            out->failed++;
    }
out:
    for (size_t i = 0; i < nl.n; i++)
        free(nl.v[i]);
    free(nl.v);
    store_free(root);
    return rc;
}

void job_migrate_list_release(struct job_migrate_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].source);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}
