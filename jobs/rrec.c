/*
 * rrec: the restore record, written by a restore and read by the next
 * archive (rrec.h). jansson formats and parses every line.
 */
#include "jobs/rrec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_time.h"
#include "storage/store.h"

void rrec_key(const char *space_id, char *buf, size_t len)
{
    snprintf(buf, len, "metadata/%s.restored.jsonl", space_id);
}

void rrec_init(struct rrec *w)
{
    memset(w, 0, sizeof(*w));
    wk_buf_init(&w->lines, RREC_MAX_BYTES);
}

void rrec_release(struct rrec *w)
{
    wk_buf_release(&w->lines);
    w->n = 0;
}

/* One JSON object as a line into b (compact, keys in the order set). */
static enum wk_code append_line(struct wk_buf *b, json_t *o, struct wk_err *err)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    enum wk_code rc;

    json_decref(o);
    if (!s)
        return wk_err_set(err, WK_E_NOMEM, "restore record: out of memory");
    rc = wk_buf_appends(b, s, err);
    if (rc == WK_OK)
        rc = wk_buf_append(b, "\n", 1, err);
    free(s);
    return rc;
}

enum wk_code rrec_note(struct rrec *w, const char *name, const char *etag,
                       struct wk_err *err)
{
    size_t before = w->lines.len;
    json_t *o;
    enum wk_code rc;
    struct wk_err lerr;

    if (w->full || !etag || !etag[0])
        return WK_OK;
    o = json_object();
    if (o) {
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "etag", json_string(etag));
    }
    wk_err_clear(&lerr);
    rc = append_line(&w->lines, o, &lerr);
    if (rc == WK_E_LIMIT) {
        /* a record is an optimisation: past its ceiling, none is kept */
        w->full = true;
        w->lines.len = before;
        return WK_OK;
    }
    if (rc != WK_OK)
        return wk_err_copy(err, &lerr);
    w->n++;
    return WK_OK;
}

enum wk_code rrec_put(struct store *st, const struct rrec *w,
                      const char *space_id, const char *archive_key,
                      const char *archive_etag, const char *checksum,
                      uint64_t size, const char *job_id, time_t restored_at,
                      struct wk_err *err)
{
    struct wk_buf body;
    char key[300], at[32];
    json_t *h = json_object();
    enum wk_code rc;

    if (w->full)
        return wk_err_set(err, WK_E_LIMIT, "restore record: more than %u bytes",
                          RREC_MAX_BYTES);
    wk_buf_init(&body, (size_t)RREC_MAX_BYTES + 4096);
    wk_time_fmt_rfc3339(restored_at, at, sizeof(at));
    if (h) {
        json_object_set_new(h, "format", json_string(RREC_FORMAT));
        json_object_set_new(h, "spaceId", json_string(space_id));
        json_object_set_new(h, "archiveKey", json_string(archive_key));
        json_object_set_new(h, "archiveEtag", json_string(archive_etag));
        json_object_set_new(h, "checksum", json_string(checksum));
        json_object_set_new(h, "size", json_integer((json_int_t)size));
        json_object_set_new(h, "jobId", json_string(job_id));
        json_object_set_new(h, "restoredAt", json_string(at));
        json_object_set_new(h, "objects", json_integer((json_int_t)w->n));
    }
    rc = append_line(&body, h, err);
    if (rc == WK_OK && w->lines.len)
        rc = wk_buf_append(&body, w->lines.data, w->lines.len, err);
    rrec_key(space_id, key, sizeof(key));
    if (rc == WK_OK)
        rc = store_put(st, key, body.data, body.len, err);
    wk_buf_release(&body);
    return rc;
}

/* ---- reading ---- */

static int obj_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rrec_obj *)a)->name,
                  ((const struct rrec_obj *)b)->name);
}

void rrec_table_release(struct rrec_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        free(t->v[i].etag);
    }
    free(t->v);
    memset(t, 0, sizeof(*t));
}

static const char *str_of(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static enum wk_code parse_header(const char *line, size_t len,
                                 const char *space_id, struct rrec_table *t,
                                 size_t *objects, struct wk_err *err)
{
    json_error_t je;
    json_t *h = json_loadb(line, len, 0, &je);
    const char *fmt, *id, *ak, *ae, *sum;
    json_t *sz, *n;
    enum wk_code rc = WK_OK;

    fmt = h ? str_of(h, "format") : NULL;
    id = h ? str_of(h, "spaceId") : NULL;
    ak = h ? str_of(h, "archiveKey") : NULL;
    ae = h ? str_of(h, "archiveEtag") : NULL;
    sum = h ? str_of(h, "checksum") : NULL;
    sz = h ? json_object_get(h, "size") : NULL;
    n = h ? json_object_get(h, "objects") : NULL;
    if (!fmt || strcmp(fmt, RREC_FORMAT) != 0)
        rc = wk_err_set(err, WK_E_CORRUPT, "restore record: not of format %s",
                        RREC_FORMAT);
    else if (!id || strcmp(id, space_id) != 0)
        rc = wk_err_set(err, WK_E_CORRUPT, "restore record: of another space");
    else if (!ak || strlen(ak) >= sizeof(t->archive_key) || !ae || !ae[0] ||
             strlen(ae) >= sizeof(t->archive_etag) || !sum ||
             strlen(sum) != 64 || !json_is_integer(sz) ||
             json_integer_value(sz) < 0 || !json_is_integer(n) ||
             json_integer_value(n) < 0)
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "restore record: header lacks archiveKey, "
                        "archiveEtag, checksum, size or objects");
    if (rc == WK_OK) {
        snprintf(t->archive_key, sizeof(t->archive_key), "%s", ak);
        snprintf(t->archive_etag, sizeof(t->archive_etag), "%s", ae);
        snprintf(t->checksum, sizeof(t->checksum), "%s", sum);
        t->size = (uint64_t)json_integer_value(sz);
        *objects = (size_t)json_integer_value(n);
    }
    json_decref(h);
    return rc;
}

enum wk_code rrec_load(struct store *st, const char *space_id,
                       struct rrec_table *t, bool *found, struct wk_err *err)
{
    struct wk_buf b;
    char key[300];
    size_t objects = 0, cap = 0;
    const char *p, *end;
    enum wk_code rc;

    memset(t, 0, sizeof(*t));
    *found = false;
    wk_buf_init(&b, (size_t)RREC_MAX_BYTES + 4096);
    rrec_key(space_id, key, sizeof(key));
    rc = store_get_all(st, key, &b, err);
    if (rc == WK_E_NOTFOUND) {
        wk_buf_release(&b);
        wk_err_clear(err);
        return WK_OK;
    }
    if (rc != WK_OK)
        goto out;
    p = b.data ? b.data : "";
    end = p + b.len;
    {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            rc = wk_err_set(err, WK_E_CORRUPT, "restore record: no header");
            goto out;
        }
        rc = parse_header(p, (size_t)(nl - p), space_id, t, &objects, err);
        if (rc != WK_OK)
            goto out;
        p = nl + 1;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        json_error_t je;
        json_t *o;
        const char *name, *etag;

        if (!nl) {
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "restore record: cut short (no final newline)");
            goto out;
        }
        o = json_loadb(p, (size_t)(nl - p), 0, &je);
        name = o ? str_of(o, "name") : NULL;
        etag = o ? str_of(o, "etag") : NULL;
        if (!name || !etag || !etag[0] || t->n >= objects) {
            json_decref(o);
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "restore record: line %zu is not an object of "
                            "the header's %zu",
                            t->n + 2, objects);
            goto out;
        }
        if (t->n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct rrec_obj *v = realloc(t->v, ncap * sizeof(*v));
            if (!v) {
                json_decref(o);
                rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
                goto out;
            }
            t->v = v;
            cap = ncap;
        }
        t->v[t->n].name = strdup(name);
        t->v[t->n].etag = strdup(etag);
        json_decref(o);
        if (!t->v[t->n].name || !t->v[t->n].etag) {
            free(t->v[t->n].name);
            free(t->v[t->n].etag);
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
            goto out;
        }
        t->n++;
        p = nl + 1;
    }
    if (t->n != objects) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "restore record: %zu objects, the header says %zu",
                        t->n, objects);
        goto out;
    }
    if (t->n > 1)
        qsort(t->v, t->n, sizeof(*t->v), obj_cmp);
    for (size_t i = 1; i < t->n; i++)
        if (strcmp(t->v[i - 1].name, t->v[i].name) == 0) {
            rc = wk_err_set(err, WK_E_CORRUPT, "restore record: '%.80s' twice",
                            t->v[i].name);
            goto out;
        }
    *found = true;
out:
    wk_buf_release(&b);
    if (rc != WK_OK)
        rrec_table_release(t);
    return rc;
}

static int cmp_obj_name(const void *name, const void *elem)
{
    return strcmp(name, ((const struct rrec_obj *)elem)->name);
}

const char *rrec_etag(const struct rrec_table *t, const char *name)
{
    const struct rrec_obj *o =
        t->n ? bsearch(name, t->v, t->n, sizeof(*t->v), cmp_obj_name) : NULL;
    return o ? o->etag : NULL;
}
