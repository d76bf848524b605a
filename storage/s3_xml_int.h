/*
 * s3_xml_int: the expat walker that s3_xml.c runs and s3_xml_docs.c's
 * document handlers drive: the path of open element names, the text of the
 * one being read, and helpers that read values or fail the parse. Not for
 * use outside storage/.
 */
#ifndef WK_STORAGE_S3_XML_INT_H
#define WK_STORAGE_S3_XML_INT_H

#include <expat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "storage/s3_xml.h"

/* Element names longer than this are stored cut; none we read is. */
#define XP_NAME_MAX 48
/* Separator expat puts between a namespace URI and the local name. */
#define XP_NS_SEP '\n'

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
void xp_fail(struct xp *x, enum wk_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Zero x for a parse of root (its handlers and result; any may be NULL). */
void xp_begin(struct xp *x, const char *root, xp_start_fn on_start,
              xp_end_fn on_end, void *out);
/* Run the parse; x->root, on_start, on_end and out are set by the caller. */
enum wk_code xp_run(struct xp *x, const char *p, size_t n, struct wk_err *err);
/* The element just closed is root/name (parent NULL) or root/parent/name. */
bool xp_closing(const struct xp *x, const char *parent, const char *name);
/* Copy text into a fixed field, cutting what does not fit. */
void xp_copy_cut(char *dst, size_t len, const char *text);
/* Grow an array of elem-sized items (capacity *cap) so one more fits. */
bool xp_grow(struct xp *x, void **arr, size_t *cap, size_t n, size_t elem);
/* A fresh copy of text; fails the parse when out of memory. */
char *xp_dup(struct xp *x, const char *text, size_t len);
/* Replace *dst (owned) with a copy of text. */
void xp_set(struct xp *x, char **dst, const char *text, size_t len);
/* Trim white space in place; numbers, flags and tags only, never keys. */
char *xp_trim(char *s);
void xp_bool(struct xp *x, char *text, bool *out);
void xp_u64(struct xp *x, char *text, uint64_t *out);
/* ETag text ("&quot;abc&quot;" arrives as "\"abc\"") without quotes. */
void xp_etag(struct xp *x, char *text, char etag[S3_XML_ETAG_MAX]);

#endif
