/*
 * s3_xml: parse the XML bodies S3 sends back, with expat, and escape text
 * for the XML bodies we send (DeleteObjects, CompleteMultipartUpload).
 *
 * Every parser takes the whole body (p, n) and fills a result struct that
 * owns its strings; release it with the matching *_release() function (also
 * after a failure, and on a zeroed struct). Parsers are pure: no I/O, no
 * globals, nothing blocks.
 *
 * Bounds: bodies longer than S3_XML_MAX_BODY, text values longer than
 * S3_XML_MAX_TEXT, nesting deeper than S3_XML_MAX_DEPTH and more than
 * S3_XML_MAX_ITEMS entries are refused with WK_E_LIMIT. Malformed or
 * truncated XML, a DOCTYPE, an unexpected root element or a bad value
 * (Size that is not a number, ...) fail with WK_E_CORRUPT. When the body is
 * an S3 <Error> document instead of the expected result, the parsers fail
 * with WK_E_HTTP and set err->s3_code (http_status is left to the caller).
 *
 * Listings requested with encoding-type=url are decoded here: when the
 * response says <EncodingType>url</EncodingType>, Key, Prefix (and, for
 * multipart listings, NextKeyMarker) are URL-decoded ('+' is a space).
 */
#ifndef WK_STORAGE_S3_XML_H
#define WK_STORAGE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"

#define S3_XML_MAX_BODY  (64u << 20)
#define S3_XML_MAX_TEXT  (16u << 10)
#define S3_XML_MAX_DEPTH 16
#define S3_XML_MAX_ITEMS 100000
#define S3_XML_ETAG_MAX  80

/* <Error><Code/><Message/></Error>; values longer than the fields are cut. */
struct s3_xml_error {
    char code[64];
    char message[256];
};

/* WK_OK when the body is an <Error> document (out filled); WK_E_CORRUPT
 * when it is not (or is malformed); WK_E_LIMIT when over a bound. */
enum wk_code s3_xml_parse_error(const char *p, size_t n,
                                struct s3_xml_error *out, struct wk_err *err);

/* One <Contents> of ListObjectsV2. */
struct s3_xml_object {
    char *key; /* owned; decoded, relative to the bucket */
    uint64_t size;
    int64_t mtime;              /* LastModified, unix seconds */
    char etag[S3_XML_ETAG_MAX]; /* quotes removed */
};

/* ListBucketResult (ListObjectsV2). */
struct s3_xml_list {
    struct s3_xml_object *objects; /* owned, n_objects entries */
    size_t n_objects;
    char **prefixes; /* owned; CommonPrefixes/Prefix, decoded */
    size_t n_prefixes;
    bool is_truncated;
    char *next_token; /* owned; NextContinuationToken or NULL */
    uint64_t key_count;
    bool url_encoded; /* the response said EncodingType=url */
};

enum wk_code s3_xml_parse_list(const char *p, size_t n, struct s3_xml_list *out,
                               struct wk_err *err);
void s3_xml_list_release(struct s3_xml_list *l);

/* InitiateMultipartUploadResult: *upload_id is owned by the caller (free()). */
enum wk_code s3_xml_parse_initiate(const char *p, size_t n, char **upload_id,
                                   struct wk_err *err);

/* CompleteMultipartUploadResult: the object's ETag (quotes removed). A 200
 * reply that holds an <Error> fails with WK_E_HTTP. */
enum wk_code s3_xml_parse_complete(const char *p, size_t n,
                                   char etag[S3_XML_ETAG_MAX],
                                   struct wk_err *err);

/* One <Error> of a DeleteResult. */
struct s3_xml_delete_error {
    char *key; /* owned */
    char code[64];
    char message[256];
};

/* DeleteResult: deleted counts <Deleted> entries (none when Quiet). */
struct s3_xml_delete {
    size_t n_deleted;
    struct s3_xml_delete_error *errors; /* owned, n_errors entries */
    size_t n_errors;
};

enum wk_code s3_xml_parse_delete(const char *p, size_t n,
                                 struct s3_xml_delete *out, struct wk_err *err);
void s3_xml_delete_release(struct s3_xml_delete *d);

/* One <Upload> of ListMultipartUploadsResult. */
/* ListPartsResult: the parts an unfinished multipart upload holds. */
struct s3_xml_part {
    unsigned number;
    uint64_t size;
    char etag[S3_XML_ETAG_MAX]; /* quotes removed */
};

struct s3_xml_parts {
    struct s3_xml_part *parts; /* owned, n_parts entries */
    size_t n_parts;
    bool is_truncated;
    uint64_t next_marker; /* NextPartNumberMarker */
};

enum wk_code s3_xml_parse_parts(const char *p, size_t n,
                                struct s3_xml_parts *out, struct wk_err *err);
void s3_xml_parts_release(struct s3_xml_parts *l);

struct s3_xml_upload {
    char *key;       /* owned; decoded */
    char *upload_id; /* owned */
};

struct s3_xml_uploads {
    struct s3_xml_upload *uploads; /* owned, n_uploads entries */
    size_t n_uploads;
    bool is_truncated;
    char *next_key_marker;       /* owned or NULL; decoded */
    char *next_upload_id_marker; /* owned or NULL */
    bool url_encoded;
};

enum wk_code s3_xml_parse_uploads(const char *p, size_t n,
                                  struct s3_xml_uploads *out,
                                  struct wk_err *err);
void s3_xml_uploads_release(struct s3_xml_uploads *u);

/* One <Version> or <DeleteMarker> of ListVersionsResult. */
struct s3_xml_version {
    char *key;                  /* owned; decoded */
    char *version_id;           /* owned */
    char etag[S3_XML_ETAG_MAX]; /* quotes removed; "" for a delete marker */
    bool is_latest;
    bool delete_marker;
};

/* ListVersionsResult (ListObjectVersions), entries in the server's order
 * (key order, newest version of a key first). */
struct s3_xml_versions {
    struct s3_xml_version *versions; /* owned, n_versions entries */
    size_t n_versions;
    bool is_truncated;
    char *next_key_marker;        /* owned or NULL; decoded */
    char *next_version_id_marker; /* owned or NULL */
    bool url_encoded;
};

enum wk_code s3_xml_parse_versions(const char *p, size_t n,
                                   struct s3_xml_versions *out,
                                   struct wk_err *err);
void s3_xml_versions_release(struct s3_xml_versions *v);

/* Append s (n bytes of UTF-8) escaped as XML character data: & < > " '
 * become entities, and tab, LF and CR become character references so that
 * the server's line-end normalisation keeps them. Other control characters
 * cannot appear in XML 1.0: WK_E_INVAL. */
enum wk_code s3_xml_escape(const char *s, size_t n, struct wk_buf *out,
                           struct wk_err *err);

/* Decode a URL-encoded value in place ("%2F" -> '/', '+' -> ' ').
 * WK_E_CORRUPT on a bad escape or an encoded NUL. */
enum wk_code s3_xml_url_decode(char *s, struct wk_err *err);

#endif
