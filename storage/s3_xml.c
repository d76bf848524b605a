/* S3 XML replies parsed with expat: one small walker keeps the path of
 * element names and the text of the element being read, and a per-document
 * handler (s3_xml_docs.c) picks the values it knows when an element
 * closes. Here: the walker and its value helpers, and escaping and URL
 * decoding. */
#include "storage/s3_xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_parse.h"
#include "storage/s3_xml_int.h"

void xp_fail(struct xp *x, enum wk_code code, const char *fmt, ...)
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

bool xp_closing(const struct xp *x, const char *parent, const char *name)
{
    if (!parent)
        return x->depth == 2 && strcmp(x->names[1], name) == 0;
    return x->depth == 3 && strcmp(x->names[1], parent) == 0 &&
           strcmp(x->names[2], name) == 0;
}

void xp_copy_cut(char *dst, size_t len, const char *text)
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
        if (xp_closing(x, NULL, "Code"))
            xp_copy_cut(x->error.code, sizeof(x->error.code), x->text.data);
        else if (xp_closing(x, NULL, "Message"))
            xp_copy_cut(x->error.message, sizeof(x->error.message),
                        x->text.data);
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

void xp_begin(struct xp *x, const char *root, xp_start_fn on_start,
              xp_end_fn on_end, void *out)
{
    memset(x, 0, sizeof(*x));
    x->root = root;
    x->on_start = on_start;
    x->on_end = on_end;
    x->out = out;
}

enum wk_code xp_run(struct xp *x, const char *p, size_t n, struct wk_err *err)
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
            xp_copy_cut(err->s3_code, sizeof(err->s3_code), x->error.code);
    }
    XML_ParserFree(x->parser);
    x->parser = NULL;
    wk_buf_release(&x->text);
    return rc;
}

bool xp_grow(struct xp *x, void **arr, size_t *cap, size_t n, size_t elem)
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

char *xp_dup(struct xp *x, const char *text, size_t len)
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

void xp_set(struct xp *x, char **dst, const char *text, size_t len)
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

char *xp_trim(char *s)
{
    size_t n;

    while (is_space(*s))
        s++;
    n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        s[--n] = '\0';
    return s;
}

void xp_bool(struct xp *x, char *text, bool *out)
{
    const char *t = xp_trim(text);
    if (strcmp(t, "true") == 0)
        *out = true;
    else if (strcmp(t, "false") == 0)
        *out = false;
    else
        xp_fail(x, WK_E_CORRUPT, "bad boolean '%s' in S3 XML reply", t);
}

void xp_u64(struct xp *x, char *text, uint64_t *out)
{
    const char *t = xp_trim(text);
    if (wk_parse_u64(t, out, NULL) != WK_OK)
        xp_fail(x, WK_E_CORRUPT, "bad number '%s' in S3 XML reply", t);
}

void xp_etag(struct xp *x, char *text, char etag[S3_XML_ETAG_MAX])
{
    char *t = xp_trim(text);
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
