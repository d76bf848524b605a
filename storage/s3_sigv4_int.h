/*
 * s3_sigv4_int: what s3_sigv4.c and s3_sigv4_check.c share: limits and the
 * request checks. Not for use outside storage/.
 */
#ifndef WK_STORAGE_S3_SIGV4_INT_H
#define WK_STORAGE_S3_SIGV4_INT_H

#include <stdbool.h>

#include "storage/s3_sigv4.h"

/* Ceiling for each output buffer and for the scratch buffers. */
#define S3_SIGV4_BUF_MAX (64 * 1024)
/* Longest secret key accepted: "AWS4" + secret is copied to the stack. */
#define S3_SIGV4_SECRET_MAX 512
/* Longest region, service or access key id. */
#define S3_SIGV4_NAME_MAX   128
#define S3_SIGV4_ALGORITHM  "AWS4-HMAC-SHA256"
#define S3_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SHA256_BYTES        32

/* RFC 3986 unreserved, in ASCII whatever the locale says. */
bool s3_sigv4_unreserved(unsigned char c);
/* RFC 9110 token characters: what a header name may hold. */
bool s3_sigv4_header_name_ok(const char *s);
/* No control characters except tab: CR or LF would split the header. */
bool s3_sigv4_header_value_ok(const char *s);
/* A session token is set. */
bool s3_sigv4_has_token(const struct s3_creds *creds);
/* Headers the signer sets itself; a caller's copy would be signed twice. */
bool s3_sigv4_header_reserved(const char *lname);
/* Everything but the header list. */
enum wk_code s3_sigv4_check_request(const struct s3_sigv4_req *req,
                                    const struct s3_creds *creds,
                                    struct wk_err *err);

#endif
