/* S3 XML replies parsed with expat: one small walker keeps the path of
 * element names and the text of the element being read, and a per-document
 * handler picks the values it knows when an element closes. */
#include "storage/s3_xml.h"

#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_parse.h"

/* Element names longer than this are stored cut; none we read is. */
#define XP_NAME_MAX 48
/* Separator expat puts between a namespace URI and the local name. */
#define XP_NS_SEP '\n'

enum xp_doc {
    XP_ERROR,
    XP_LIST,
    XP_INITIATE,
    XP_COMPLETE,
    XP_DELETE,
    XP_UPLOADS,
};

struct xp;
typedef void (*xp_start_fn)(struct xp *x);
typedef void (*xp_end_fn)(struct xp *x, char *text, size_t len);

struct xp {
    XML_Parser parser; /* owned */
    const char *root;  /* borrowed literal: the expected root element */
    const char *root2; /* borrowed literal: an accepted alias, or NULL */
    bool seen_root;
    bool is_error;  /* the root is <Error> */
    unsigned depth; /* elements open; names[0] is the root */
    char names[S3_XML_MAX_DEPTH][XP_NAME_MAX];
    struct wk_buf text; /* owned: character data of the open element */
    enum wk_code rc;
    struct wk_err *err; /* borrowed */
    struct s3_xml_error error;
    xp_start_fn on_start; /* may be NULL */
    xp_end_fn on_end;     /* may be NULL */
    void *out;            /* borrowed: the result being filled */
    size_t cap;           /* capacity of the (first) array being filled */
    size_t cap2;          /* capacity of the second one (prefixes) */
};

/* Stop the parse with an error; the first one wins. */
static void xp_fail(struct xp *x, enum wk_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xp_fail(struct xp *x, enum wk_code code, const char *fmt, ...)
{
    char msg[sizeof(x->err->msg)];
    va_list ap;

    if (x->rc != WK_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    x->rc = code;
    wk_err_set(x->err, code, "%s", msg);
    XML_StopParser(x->parser, XML_FALSE);
}

static const char *local_name(const char *name)
{
    const char *sep = strrchr(name, XP_NS_SEP);
    return sep ? sep + 1 : name;
}

static void XMLCALL xp_start(void *ud, const XML_Char *name,
                             const XML_Char **attrs)
{
    struct xp *x = ud;
    const char *local = local_name(name);

    (void)attrs;
    if (x->rc != WK_OK)
        return;
    if (x->depth >= S3_XML_MAX_DEPTH) {
        xp_fail(x, WK_E_LIMIT, "S3 XML nested deeper than %d elements",
                S3_XML_MAX_DEPTH);
        return;
    }
    snprintf(x->names[x->depth], XP_NAME_MAX, "%s", local);
    x->depth++;
    wk_buf_reset(&x->text);
    if (x->depth == 1) {
        x->seen_root = true;
        if (strcmp(local, "Error") == 0)
            x->is_error = true;
        else if (strcmp(local, x->root) != 0 &&
                 !(x->root2 && strcmp(local, x->root2) == 0))
            xp_fail(x, WK_E_CORRUPT, "unexpected root element '%s' in S3 reply",
                    x->names[0]);
        return;
    }
    if (!x->is_error && x->on_start)
        x->on_start(x);
}

/* The element just closed is root/name (parent NULL) or root/parent/name. */
static bool closing(const struct xp *x, const char *parent, const char *name)
{
    if (!parent)
        return x->depth == 2 && strcmp(x->names[1], name) == 0;
    return x->depth == 3 && strcmp(x->names[1], parent) == 0 &&
           strcmp(x->names[2], name) == 0;
}

/* Copy text into a fixed field, cutting what does not fit. */
static void copy_cut(char *dst, size_t len, const char *text)
{
    snprintf(dst, len, "%s", text);
}

static void XMLCALL xp_end(void *ud, const XML_Char *name)
{
    struct xp *x = ud;

    (void)name;
    if (x->rc != WK_OK || x->depth == 0)
        return;
    if (x->text.data == NULL && wk_buf_reserve(&x->text, 0, NULL) != WK_OK) {
        xp_fail(x, WK_E_NOMEM, "S3 XML: out of memory");
        return;
    }
    if (x->is_error) {
        if (closing(x, NULL, "Code"))
            copy_cut(x->error.code, sizeof(x->error.code), x->text.data);
        else if (closing(x, NULL, "Message"))
            copy_cut(x->error.message, sizeof(x->error.message), x->text.data);
    } else if (x->depth > 1 && x->on_end) {
        x->on_end(x, x->text.data, x->text.len);
    }
    x->depth--;
    wk_buf_reset(&x->text);
}

static void XMLCALL xp_chars(void *ud, const XML_Char *s, int len)
{
    struct xp *x = ud;

    if (x->rc != WK_OK || len <= 0)
        return;
    if (wk_buf_append(&x->text, s, (size_t)len, NULL) != WK_OK)
        xp_fail(x, WK_E_LIMIT, "S3 XML text value longer than %u bytes",
                S3_XML_MAX_TEXT);
}

static void XMLCALL xp_doctype(void *ud, const XML_Char *name,
                               const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
    struct xp *x = ud;

    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    xp_fail(x, WK_E_CORRUPT, "S3 XML with a DOCTYPE ('%s') refused", name);
}

/* Run the parse; x->root, on_start, on_end and out are set by the caller. */
static enum wk_code xp_run(struct xp *x, const char *p, size_t n,
                           struct wk_err *err)
{
    enum XML_Status st;
    enum wk_code rc = WK_OK;

    x->err = err;
    x->rc = WK_OK;
    wk_buf_init(&x->text, S3_XML_MAX_TEXT);
    if (n > S3_XML_MAX_BODY)
        return wk_err_set(err, WK_E_LIMIT,
                          "S3 XML reply of %zu bytes is over the limit of %u",
                          n, S3_XML_MAX_BODY);
    x->parser = XML_ParserCreateNS("UTF-8", XP_NS_SEP);
    if (!x->parser)
        return wk_err_set(err, WK_E_NOMEM, "S3 XML: out of memory");
    XML_SetUserData(x->parser, x);
    XML_SetElementHandler(x->parser, xp_start, xp_end);
    XML_SetCharacterDataHandler(x->parser, xp_chars);
    XML_SetStartDoctypeDeclHandler(x->parser, xp_doctype);

    st = XML_Parse(x->parser, p ? p : "", (int)n, XML_TRUE);
    if (x->rc != WK_OK) {
        rc = x->rc;
    } else if (st != XML_STATUS_OK) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "malformed S3 XML reply at line %lu: %s",
                        (unsigned long)XML_GetCurrentLineNumber(x->parser),
                        XML_ErrorString(XML_GetErrorCode(x->parser)));
    } else if (!x->seen_root) {
        rc = wk_err_set(err, WK_E_CORRUPT, "empty S3 XML reply");
    } else if (x->is_error && strcmp(x->root, "Error") != 0) {
        rc = wk_err_set(err, WK_E_HTTP, "S3 error %s: %s",
                        x->error.code[0] ? x->error.code : "(no code)",
                        x->error.message);
        if (err && err->s3_code[0] == '\0')
            copy_cut(err->s3_code, sizeof(err->s3_code), x->error.code);
    }
    XML_ParserFree(x->parser);
    x->parser = NULL;
    wk_buf_release(&x->text);
    return rc;
}

/* Grow an array of elem-sized items (capacity *cap) so one more fits. */
static bool xp_grow(struct xp *x, void **arr, size_t *cap, size_t n,
                    size_t elem)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return true;
    if (n >= S3_XML_MAX_ITEMS) {
        xp_fail(x, WK_E_LIMIT, "S3 XML reply with more than %d entries",
                S3_XML_MAX_ITEMS);
        return false;
    }
    ncap = *cap ? *cap * 2 : 16;
    p = realloc(*arr, ncap * elem);
    if (!p) {
        xp_fail(x, WK_E_NOMEM, "S3 XML: out of memory");
        return false;
    }
    memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return true;
}

/* A fresh copy of text; fails the parse when out of memory. */
static char *xp_dup(struct xp *x, const char *text, size_t len)
{
    char *s = malloc(len + 1);
    if (!s) {
        xp_fail(x, WK_E_NOMEM, "S3 XML: out of memory");
        return NULL;
    }
    memcpy(s, text, len);
    s[len] = '\0';
    return s;
}

/* Replace *dst (owned) with a copy of text. */
static void xp_set(struct xp *x, char **dst, const char *text, size_t len)
{
    char *s = xp_dup(x, text, len);
    if (!s)
        return;
    free(*dst);
    *dst = s;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Trim white space in place; numbers, flags and tags only, never keys. */
static char *trim(char *s)
{
    size_t n;

    while (is_space(*s))
        s++;
    n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void xp_bool(struct xp *x, char *text, bool *out)
{
    const char *t = trim(text);
    if (strcmp(t, "true") == 0)
        *out = true;
    else if (strcmp(t, "false") == 0)
        *out = false;
    else
        xp_fail(x, WK_E_CORRUPT, "bad boolean '%s' in S3 XML reply", t);
}

static void xp_u64(struct xp *x, char *text, uint64_t *out)
{
    const char *t = trim(text);
    if (wk_parse_u64(t, out, NULL) != WK_OK)
        xp_fail(x, WK_E_CORRUPT, "bad number '%s' in S3 XML reply", t);
}

/* ETag text ("&quot;abc&quot;" arrives as "\"abc\"") without quotes. */
static void xp_etag(struct xp *x, char *text, char etag[S3_XML_ETAG_MAX])
{
    char *t = trim(text);
    size_t n = strlen(t);

    if (n >= 2 && t[0] == '"' && t[n - 1] == '"') {
        t[n - 1] = '\0';
        t++;
        n -= 2;
    }
    if (n >= S3_XML_ETAG_MAX) {
        xp_fail(x, WK_E_LIMIT, "ETag '%s' in S3 XML reply is too long", t);
        return;
    }
    memcpy(etag, t, n + 1);
}

enum wk_code s3_xml_parse_error(const char *p, size_t n,
                                struct s3_xml_error *out, struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    memset(&x, 0, sizeof(x));
    memset(out, 0, sizeof(*out));
    x.root = "Error";
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

    if (o && closing(x, "Contents", "Key")) {
        xp_set(x, &o->key, text, len);
    } else if (o && closing(x, "Contents", "Size")) {
        xp_u64(x, text, &o->size);
    } else if (o && closing(x, "Contents", "LastModified")) {
        time_t t;
        const char *v = trim(text);
        if (wk_parse_rfc3339(v, &t, NULL) != WK_OK)
            xp_fail(x, WK_E_CORRUPT, "bad LastModified '%s' in S3 listing", v);
        else
            o->mtime = (int64_t)t;
    } else if (o && closing(x, "Contents", "ETag")) {
        xp_etag(x, text, o->etag);
    } else if (closing(x, NULL, "Contents")) {
        if (o && !o->key)
            xp_fail(x, WK_E_CORRUPT, "S3 listing entry without a Key");
    } else if (closing(x, "CommonPrefixes", "Prefix")) {
        char *dup;
        if (!xp_grow(x, (void **)&l->prefixes, &x->cap2, l->n_prefixes,
                     sizeof(*l->prefixes)))
            return;
        dup = xp_dup(x, text, len);
        if (dup)
            l->prefixes[l->n_prefixes++] = dup;
    } else if (closing(x, NULL, "IsTruncated")) {
        xp_bool(x, text, &l->is_truncated);
    } else if (closing(x, NULL, "NextContinuationToken")) {
        xp_set(x, &l->next_token, text, len);
    } else if (closing(x, NULL, "KeyCount")) {
        xp_u64(x, text, &l->key_count);
    } else if (closing(x, NULL, "EncodingType")) {
        l->url_encoded = strcmp(trim(text), "url") == 0;
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

    memset(&x, 0, sizeof(x));
    memset(out, 0, sizeof(*out));
    x.root = "ListBucketResult";
    x.on_start = list_start;
    x.on_end = list_end;
    x.out = out;
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
    if (closing(x, NULL, "UploadId"))
        xp_set(x, x->out, text, len);
}

enum wk_code s3_xml_parse_initiate(const char *p, size_t n, char **upload_id,
                                   struct wk_err *err)
{
    struct xp x;
    enum wk_code rc;

    memset(&x, 0, sizeof(x));
    *upload_id = NULL;
    x.root = "InitiateMultipartUploadResult";
    x.on_end = initiate_end;
    x.out = upload_id;
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
    if (closing(x, NULL, "ETag")) {
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

    memset(&x, 0, sizeof(x));
    etag[0] = '\0';
    x.root = "CompleteMultipartUploadResult";
    /* what moto (5.x) sends */
    x.root2 = "CompleteMultipartUploadResponse";
    x.on_end = complete_end;
    x.out = &c;
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

    if (closing(x, NULL, "Deleted"))
        d->n_deleted++;
    else if (e && closing(x, "Error", "Key"))
        xp_set(x, &e->key, text, len);
    else if (e && closing(x, "Error", "Code"))
        copy_cut(e->code, sizeof(e->code), trim(text));
    else if (e && closing(x, "Error", "Message"))
        copy_cut(e->message, sizeof(e->message), text);
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

    memset(&x, 0, sizeof(x));
    memset(out, 0, sizeof(*out));
    x.root = "DeleteResult";
    x.on_start = delete_start;
    x.on_end = delete_end;
    x.out = out;
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
    if (pt && closing(x, "Part", "PartNumber")) {
        xp_u64(x, text, &v);
        if (x->rc == WK_OK && (v < 1 || v > 10000))
            xp_fail(x, WK_E_CORRUPT, "S3 part number %llu out of range",
                    (unsigned long long)v);
        pt->number = (unsigned)v;
    } else if (pt && closing(x, "Part", "Size")) {
        xp_u64(x, text, &pt->size);
    } else if (pt && closing(x, "Part", "ETag")) {
        xp_etag(x, text, pt->etag);
    } else if (closing(x, NULL, "Part")) {
        if (pt && (pt->number == 0 || !pt->etag[0]))
            xp_fail(x, WK_E_CORRUPT,
                    "S3 part listing entry without a PartNumber or ETag");
    } else if (closing(x, NULL, "IsTruncated")) {
        xp_bool(x, text, &l->is_truncated);
    } else if (closing(x, NULL, "NextPartNumberMarker")) {
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

    memset(&x, 0, sizeof(x));
    memset(out, 0, sizeof(*out));
    x.root = "ListPartsResult";
    x.root2 = "ListPartsResponse"; /* moto's */
    x.on_start = parts_start;
    x.on_end = parts_end;
    x.out = out;
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

    if (up && closing(x, "Upload", "Key"))
        xp_set(x, &up->key, text, len);
    else if (up && closing(x, "Upload", "UploadId"))
        xp_set(x, &up->upload_id, text, len);
    else if (closing(x, NULL, "Upload") && up && (!up->key || !up->upload_id))
        xp_fail(x, WK_E_CORRUPT,
                "S3 upload listing entry without a Key or UploadId");
    else if (closing(x, NULL, "IsTruncated"))
        xp_bool(x, text, &u->is_truncated);
    else if (closing(x, NULL, "NextKeyMarker"))
        xp_set(x, &u->next_key_marker, text, len);
    else if (closing(x, NULL, "NextUploadIdMarker"))
        xp_set(x, &u->next_upload_id_marker, text, len);
    else if (closing(x, NULL, "EncodingType"))
        u->url_encoded = strcmp(trim(text), "url") == 0;
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

    memset(&x, 0, sizeof(x));
    memset(out, 0, sizeof(*out));
    x.root = "ListMultipartUploadsResult";
    x.on_start = uploads_start;
    x.on_end = uploads_end;
    x.out = out;
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

/* Escaping and decoding */

enum wk_code s3_xml_escape(const char *s, size_t n, struct wk_buf *out,
                           struct wk_err *err)
{
    size_t run = 0; /* start of the bytes not yet copied */
    enum wk_code rc = WK_OK;

    for (size_t i = 0; i < n && rc == WK_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *ent = NULL;

        switch (c) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&apos;";
            break;
        case '\t':
            ent = "&#9;";
            break;
        case '\n':
            ent = "&#10;";
            break;
        case '\r':
            ent = "&#13;";
            break;
        default:
            if (c < 0x20)
                return wk_err_set(err, WK_E_INVAL,
                                  "control character 0x%02x cannot be sent "
                                  "in S3 XML",
                                  c);
            continue;
        }
        rc = wk_buf_append(out, s + run, i - run, err);
        if (rc == WK_OK)
            rc = wk_buf_appends(out, ent, err);
        run = i + 1;
    }
    if (rc == WK_OK)
        rc = wk_buf_append(out, s + run, n - run, err);
    return rc;
}

enum wk_code s3_xml_url_decode(char *s, struct wk_err *err)
{
    char *w = s;

    for (const char *r = s; *r; r++) {
        if (*r == '+') {
            *w++ = ' ';
        } else if (*r == '%') {
            int hi = wk_hex_digit(r[1]);
            int lo = hi < 0 ? -1 : wk_hex_digit(r[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return wk_err_set(err, WK_E_CORRUPT,
                                  "bad URL escape in S3 listing value");
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return WK_OK;
}
