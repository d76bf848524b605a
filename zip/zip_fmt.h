/*
 * zip_fmt: the ZIP format's byte-level vocabulary shared by the zip/ files
 * that parse or write raw bytes (zipr, zipcd, zsniff, zipw): little-endian
 * field readers and writers, the general purpose flag bits, signatures and
 * record sizes. Header-only (static inline), no state, no allocation.
 */
#ifndef WK_ZIP_ZIP_FMT_H
#define WK_ZIP_ZIP_FMT_H

#include <stdint.h>

/* General purpose bit flags (local header and central directory). */
#define ZIP_FLAG_ENCRYPTED    (1u << 0)
#define ZIP_FLAG_DESCRIPTOR   (1u << 3)
#define ZIP_FLAG_STRONG_CRYPT (1u << 6)
#define ZIP_FLAG_UTF8         (1u << 11) /* name is UTF-8 */
#define ZIP_FLAG_CD_CRYPT     (1u << 13)

/* Record signatures. */
#define ZIP_SIG_LOCAL      0x04034b50u /* "PK\3\4" */
#define ZIP_SIG_CENTRAL    0x02014b50u /* "PK\1\2" */
#define ZIP_SIG_DESCRIPTOR 0x08074b50u /* "PK\7\8" */
#define ZIP_SIG_Z64_END    0x06064b50u /* "PK\6\6" */
#define ZIP_SIG_Z64_LOC    0x07064b50u /* "PK\6\7" */
#define ZIP_SIG_END        0x06054b50u /* "PK\5\6" */

/* Extra field ids. */
#define ZIP_EXTRA_ZIP64 0x0001u
#define ZIP_EXTRA_UT    0x5455u /* extended timestamp */

/* Fixed sizes of the records. */
#define ZIP_LOCAL_FIXED 30u /* local file header */
#define ZIP_EOCD_BYTES  22u /* end of central directory record */
#define ZIP_LOC_BYTES   20u /* ZIP64 end of central directory locator */
#define ZIP_Z64_BYTES   56u /* ZIP64 end of central directory record */
#define ZIP_CD_FIXED    46u /* central directory record */

static inline uint16_t zip_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t zip_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t zip_le64(const unsigned char *p)
{
    return (uint64_t)zip_le32(p) | ((uint64_t)zip_le32(p + 4) << 32);
}

static inline unsigned char *zip_put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    return p + 2;
}

static inline unsigned char *zip_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
    return p + 4;
}

static inline unsigned char *zip_put64(unsigned char *p, uint64_t v)
{
    zip_put32(p, (uint32_t)v);
    return zip_put32(p + 4, (uint32_t)(v >> 32));
}

/* A 64-bit value for a "%llu" in a message. */
static inline unsigned long long zip_ull(uint64_t v)
{
    return (unsigned long long)v;
}

#endif
