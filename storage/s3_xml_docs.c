/* The S3 documents, each a start and an end handler on the s3_xml walker
 * plus its parse and release functions: Error, ListBucketResult,
 * InitiateMultipartUploadResult, CompleteMultipartUploadResult,
 * DeleteResult, ListPartsResult and ListMultipartUploadsResult. */
#include "storage/s3_xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_parse.h"
#include "storage/s3_xml_int.h"

/* Error */

enum wk_code s3_xml_parse_error(const char *p, size_t n,
                                struct s3_xml_error *out, struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    xp_begin(&x, "Error", NULL, NULL, NULL);
    memset(out, 0, sizeof(*out));
    rc = xp_run(&x, p, n, err);
    if (rc == WK_OK && !x.is_error)
        rc = wk_err_set(err, WK_E_CORRUPT, "not an S3 error document");
    if (rc == WK_OK)
        *out = x.error;
    return rc;
}

/* ListBucketResult */

static void list_start(struct xp *x)
{
    struct s3_xml_list *l = x->out;

    if (x->depth == 2 && strcmp(x->names[1], "Contents") == 0) {
        if (xp_grow(x, (void **)&l->objects, &x->cap, l->n_objects,
                    sizeof(*l->objects)))
            l->n_objects++;
    }
}

static void list_end(struct xp *x, char *text, size_t len)
{
    struct s3_xml_list *l = x->out;
    struct s3_xml_object *o =
        l->n_objects ? &l->objects[l->n_objects - 1] : NULL;

    if (o && xp_closing(x, "Contents", "Key")) {
        xp_set(x, &o->key, text, len);
    } else if (o && xp_closing(x, "Contents", "Size")) {
        xp_u64(x, text, &o->size);
    } else if (o && xp_closing(x, "Contents", "LastModified")) {
        time_t t;
        const char *v = xp_trim(text);
        if (wk_parse_rfc3339(v, &t, NULL) != WK_OK)
            xp_fail(x, WK_E_CORRUPT, "bad LastModified '%s' in S3 listing", v);
        else
            o->mtime = (int64_t)t;
    } else if (o && xp_closing(x, "Contents", "ETag")) {
        xp_etag(x, text, o->etag);
    } else if (xp_closing(x, NULL, "Contents")) {
        if (o && !o->key)
            xp_fail(x, WK_E_CORRUPT, "S3 listing entry without a Key");
    } else if (xp_closing(x, "CommonPrefixes", "Prefix")) {
        char *dup;
        if (!xp_grow(x, (void **)&l->prefixes, &x->cap2, l->n_prefixes,
                     sizeof(*l->prefixes)))
            return;
        dup = xp_dup(x, text, len);
        if (dup)
            l->prefixes[l->n_prefixes++] = dup;
    } else if (xp_closing(x, NULL, "IsTruncated")) {
        xp_bool(x, text, &l->is_truncated);
    } else if (xp_closing(x, NULL, "NextContinuationToken")) {
        xp_set(x, &l->next_token, text, len);
    } else if (xp_closing(x, NULL, "KeyCount")) {
        xp_u64(x, text, &l->key_count);
    } else if (xp_closing(x, NULL, "EncodingType")) {
        l->url_encoded = strcmp(xp_trim(text), "url") == 0;
    }
}

void s3_xml_list_release(struct s3_xml_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_objects; i++)
        free(l->objects[i].key);
    free(l->objects);
    for (size_t i = 0; i < l->n_prefixes; i++)
        free(l->prefixes[i]);
    free(l->prefixes);
    free(l->next_token);
    memset(l, 0, sizeof(*l));
}

enum wk_code s3_xml_parse_list(const char *p, size_t n, struct s3_xml_list *out,
                               struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    xp_begin(&x, "ListBucketResult", list_start, list_end, out);
    memset(out, 0, sizeof(*out));
    rc = xp_run(&x, p, n, err);
    for (size_t i = 0; rc == WK_OK && out->url_encoded && i < out->n_objects;
         i++)
        rc = s3_xml_url_decode(out->objects[i].key, err);
    for (size_t i = 0; rc == WK_OK && out->url_encoded && i < out->n_prefixes;
         i++)
        rc = s3_xml_url_decode(out->prefixes[i], err);
    if (rc != WK_OK)
        s3_xml_list_release(out);
    return rc;
}

/* InitiateMultipartUploadResult */

static void initiate_end(struct xp *x, char *text, size_t len)
{
    if (xp_closing(x, NULL, "UploadId"))
        xp_set(x, x->out, text, len);
}

enum wk_code s3_xml_parse_initiate(const char *p, size_t n, char **upload_id,
                                   struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    xp_begin(&x, "InitiateMultipartUploadResult", NULL, initiate_end,
             upload_id);
    *upload_id = NULL;
    rc = xp_run(&x, p, n, err);
    if (rc == WK_OK && (!*upload_id || !**upload_id))
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "S3 reply to create multipart upload has no UploadId");
    if (rc != WK_OK) {
        free(*upload_id);
        *upload_id = NULL;
    }
    return rc;
}

/* CompleteMultipartUploadResult */

struct complete_out {
    char *etag;
    bool seen;
};

static void complete_end(struct xp *x, char *text, size_t len)
{
    struct complete_out *c = x->out;

    (void)len;
    if (xp_closing(x, NULL, "ETag")) {
        xp_etag(x, text, c->etag);
        c->seen = true;
    }
}

enum wk_code s3_xml_parse_complete(const char *p, size_t n,
                                   char etag[S3_XML_ETAG_MAX],
                                   struct wk_err *err)
{
    struct xp x;
    struct complete_out c = { etag, false };
    enum wk_code rc;

    xp_begin(&x, "CompleteMultipartUploadResult", NULL, complete_end, &c);
    etag[0] = '\0';
    /* what moto (5.x) sends */
    x.root2 = "CompleteMultipartUploadResponse";
    rc = xp_run(&x, p, n, err);
    if (rc == WK_OK && !c.seen)
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "S3 reply to complete multipart upload has no ETag");
    return rc;
}

/* DeleteResult */

static void delete_start(struct xp *x)
{
    struct s3_xml_delete *d = x->out;

    if (x->depth == 2 && strcmp(x->names[1], "Error") == 0) {
        if (xp_grow(x, (void **)&d->errors, &x->cap, d->n_errors,
                    sizeof(*d->errors)))
            d->n_errors++;
    }
}

static void delete_end(struct xp *x, char *text, size_t len)
{
    struct s3_xml_delete *d = x->out;
    struct s3_xml_delete_error *e =
        d->n_errors ? &d->errors[d->n_errors - 1] : NULL;

    if (xp_closing(x, NULL, "Deleted"))
        d->n_deleted++;
    else if (e && xp_closing(x, "Error", "Key"))
        xp_set(x, &e->key, text, len);
    else if (e && xp_closing(x, "Error", "Code"))
        xp_copy_cut(e->code, sizeof(e->code), xp_trim(text));
    else if (e && xp_closing(x, "Error", "Message"))
        xp_copy_cut(e->message, sizeof(e->message), text);
}

void s3_xml_delete_release(struct s3_xml_delete *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_errors; i++)
        free(d->errors[i].key);
    free(d->errors);
    memset(d, 0, sizeof(*d));
}

enum wk_code s3_xml_parse_delete(const char *p, size_t n,
                                 struct s3_xml_delete *out, struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    xp_begin(&x, "DeleteResult", delete_start, delete_end, out);
    memset(out, 0, sizeof(*out));
    rc = xp_run(&x, p, n, err);
    for (size_t i = 0; rc == WK_OK && i < out->n_errors; i++)
        if (!out->errors[i].key)
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "S3 delete result error without a Key");
    if (rc != WK_OK)
        s3_xml_delete_release(out);
    return rc;
}

/* ListPartsResult */

static void parts_start(struct xp *x)
{
    struct s3_xml_parts *l = x->out;

    if (x->depth == 2 && strcmp(x->names[1], "Part") == 0) {
        if (xp_grow(x, (void **)&l->parts, &x->cap, l->n_parts,
                    sizeof(*l->parts)))
            l->n_parts++;
    }
}

static void parts_end(struct xp *x, char *text, size_t len)
{
    struct s3_xml_parts *l = x->out;
    struct s3_xml_part *pt = l->n_parts ? &l->parts[l->n_parts - 1] : NULL;
    uint64_t v = 0;

    (void)len;
    if (pt && xp_closing(x, "Part", "PartNumber")) {
        xp_u64(x, text, &v);
        if (x->rc == WK_OK && (v < 1 || v > 10000))
            xp_fail(x, WK_E_CORRUPT, "S3 part number %llu out of range",
                    (unsigned long long)v);
        pt->number = (unsigned)v;
    } else if (pt && xp_closing(x, "Part", "Size")) {
        xp_u64(x, text, &pt->size);
    } else if (pt && xp_closing(x, "Part", "ETag")) {
        xp_etag(x, text, pt->etag);
    } else if (xp_closing(x, NULL, "Part")) {
        if (pt && (pt->number == 0 || !pt->etag[0]))
            xp_fail(x, WK_E_CORRUPT,
                    "S3 part listing entry without a PartNumber or ETag");
    } else if (xp_closing(x, NULL, "IsTruncated")) {
        xp_bool(x, text, &l->is_truncated);
    } else if (xp_closing(x, NULL, "NextPartNumberMarker")) {
        xp_u64(x, text, &l->next_marker);
    }
}

void s3_xml_parts_release(struct s3_xml_parts *l)
{
    if (!l)
        return;
    free(l->parts);
    memset(l, 0, sizeof(*l));
}

enum wk_code s3_xml_parse_parts(const char *p, size_t n,
                                struct s3_xml_parts *out, struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    xp_begin(&x, "ListPartsResult", parts_start, parts_end, out);
    memset(out, 0, sizeof(*out));
    x.root2 = "ListPartsResponse"; /* moto's */
    rc = xp_run(&x, p, n, err);
    if (rc != WK_OK)
        s3_xml_parts_release(out);
    return rc;
}

/* ListMultipartUploadsResult */

static void uploads_start(struct xp *x)
{
    struct s3_xml_uploads *u = x->out;

    if (x->depth == 2 && strcmp(x->names[1], "Upload") == 0) {
        if (xp_grow(x, (void **)&u->uploads, &x->cap, u->n_uploads,
                    sizeof(*u->uploads)))
            u->n_uploads++;
    }
}

static void uploads_end(struct xp *x, char *text, size_t len)
{
    struct s3_xml_uploads *u = x->out;
    struct s3_xml_upload *up =
        u->n_uploads ? &u->uploads[u->n_uploads - 1] : NULL;

    if (up && xp_closing(x, "Upload", "Key"))
        xp_set(x, &up->key, text, len);
    else if (up && xp_closing(x, "Upload", "UploadId"))
        xp_set(x, &up->upload_id, text, len);
    else if (xp_closing(x, NULL, "Upload") && up &&
             (!up->key || !up->upload_id))
        xp_fail(x, WK_E_CORRUPT,
                "S3 upload listing entry without a Key or UploadId");
    else if (xp_closing(x, NULL, "IsTruncated"))
        xp_bool(x, text, &u->is_truncated);
    else if (xp_closing(x, NULL, "NextKeyMarker"))
        xp_set(x, &u->next_key_marker, text, len);
    else if (xp_closing(x, NULL, "NextUploadIdMarker"))
        xp_set(x, &u->next_upload_id_marker, text, len);
    else if (xp_closing(x, NULL, "EncodingType"))
        u->url_encoded = strcmp(xp_trim(text), "url") == 0;
}

void s3_xml_uploads_release(struct s3_xml_uploads *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n_uploads; i++) {
        free(u->uploads[i].key);
        free(u->uploads[i].upload_id);
    }
    free(u->uploads);
    free(u->next_key_marker);
    free(u->next_upload_id_marker);
    memset(u, 0, sizeof(*u));
}

enum wk_code s3_xml_parse_uploads(const char *p, size_t n,
                                  struct s3_xml_uploads *out,
                                  struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    xp_begin(&x, "ListMultipartUploadsResult", uploads_start, uploads_end, out);
    memset(out, 0, sizeof(*out));
    rc = xp_run(&x, p, n, err);
    for (size_t i = 0; rc == WK_OK && out->url_encoded && i < out->n_uploads;
         i++)
        rc = s3_xml_url_decode(out->uploads[i].key, err);
    if (rc == WK_OK && out->url_encoded && out->next_key_marker)
        rc = s3_xml_url_decode(out->next_key_marker, err);
    if (rc != WK_OK)
        s3_xml_uploads_release(out);
    return rc;
}

/* ListVersionsResult */

static void versions_start(struct xp *x)
{
    struct s3_xml_versions *v = x->out;

    if (x->depth == 2 && (strcmp(x->names[1], "Version") == 0 ||
                          strcmp(x->names[1], "DeleteMarker") == 0)) {
        if (xp_grow(x, (void **)&v->versions, &x->cap, v->n_versions,
                    sizeof(*v->versions))) {
            v->versions[v->n_versions].delete_marker =
                strcmp(x->names[1], "DeleteMarker") == 0;
            v->n_versions++;
        }
    }
}

static void versions_end(struct xp *x, char *text, size_t len)
{
    struct s3_xml_versions *v = x->out;
    struct s3_xml_version *ve =
        v->n_versions ? &v->versions[v->n_versions - 1] : NULL;
    const char *kind = ve && ve->delete_marker ? "DeleteMarker" : "Version";

    if (ve && xp_closing(x, kind, "Key"))
        xp_set(x, &ve->key, text, len);
    else if (ve && xp_closing(x, kind, "VersionId"))
        xp_set(x, &ve->version_id, text, len);
    else if (ve && xp_closing(x, kind, "ETag"))
        xp_etag(x, text, ve->etag);
    else if (ve && xp_closing(x, kind, "IsLatest"))
        xp_bool(x, text, &ve->is_latest);
    else if (ve && xp_closing(x, NULL, kind) && (!ve->key || !ve->version_id))
        xp_fail(x, WK_E_CORRUPT,
                "S3 version listing entry without a Key or VersionId");
    else if (xp_closing(x, NULL, "IsTruncated"))
        xp_bool(x, text, &v->is_truncated);
    else if (xp_closing(x, NULL, "NextKeyMarker"))
        xp_set(x, &v->next_key_marker, text, len);
    else if (xp_closing(x, NULL, "NextVersionIdMarker"))
        xp_set(x, &v->next_version_id_marker, text, len);
    else if (xp_closing(x, NULL, "EncodingType"))
        v->url_encoded = strcmp(xp_trim(text), "url") == 0;
}

void s3_xml_versions_release(struct s3_xml_versions *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_versions; i++) {
        free(v->versions[i].key);
        free(v->versions[i].version_id);
    }
    free(v->versions);
    free(v->next_key_marker);
    free(v->next_version_id_marker);
    memset(v, 0, sizeof(*v));
}

enum wk_code s3_xml_parse_versions(const char *p, size_t n,
                                   struct s3_xml_versions *out,
                                   struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    xp_begin(&x, "ListVersionsResult", versions_start, versions_end, out);
    memset(out, 0, sizeof(*out));
    rc = xp_run(&x, p, n, err);
    for (size_t i = 0; rc == WK_OK && out->url_encoded && i < out->n_versions;
         i++)
        rc = s3_xml_url_decode(out->versions[i].key, err);
    if (rc == WK_OK && out->url_encoded && out->next_key_marker)
        rc = s3_xml_url_decode(out->next_key_marker, err);
    if (rc != WK_OK)
        s3_xml_versions_release(out);
    return rc;
}
