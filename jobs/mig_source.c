/*
 * mig_source: where a migration reads from. The source URL rules
 * (job_migrate_url_valid), a source inside the store's own areas refused,
 * the source store opened (with SILA_SOURCE_* credentials), its
 * space-v1/space.json read for the spaceId (job_migrate_resolve), and the
 * space folders under a root for migrate-all (job_migrate_list_spaces).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"
#include "jobs/job_int.h"
#include "jobs/job_migrate.h"
#include "jobs/mig_int.h"
#include "storage/store.h"

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
bool mig_source_in_store(const char *source, const char *store_url)
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
enum wk_code mig_read_space_id(struct store *st, const char *base,
                               const char *label, char id[JOB_SPACE_ID_MAX + 1],
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

/* Open url with opts (or options from the environment when opts is NULL),
 * with the source's own endpoint and credentials when SILA_SOURCE_* say
 * so (another S3 service, another account). */
enum wk_code mig_open_source(const char *url, const struct store_opts *opts,
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

enum wk_code job_migrate_resolve(struct job *job, const struct store_opts *opts,
                                 struct wk_err *err)
{
    struct store *src = NULL;
    enum wk_code rc;

    if (job->type != JOB_MIGRATE || job->space_id[0])
        return WK_OK;
    rc = mig_open_source(job->source, opts, &src, err);
    if (rc == WK_OK)
        rc = mig_read_space_id(src, "", job->source, job->space_id, err);
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
    s->code = mig_read_space_id(root, base, s->source, id, &e);
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
    rc = mig_open_source(norm, opts, &root, err);
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
