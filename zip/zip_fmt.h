/*
 * zip_fmt: the ZIP format's byte-level vocabulary shared by the zip/ files
 * that parse raw bytes (zipr, zipcd, zsniff): little-endian field readers,
 * the general purpose flag bits and record sizes. Header-only (static
 * inline), no state, no allocation.
 */
#ifndef WK_ZIP_ZIP_FMT_H
#define WK_ZIP_ZIP_FMT_H

#include <stdint.h>

/* General purpose bit flags (local header and central directory). */
#define ZIP_FLAG_ENCRYPTED    (1u << 0)
#define ZIP_FLAG_DESCRIPTOR   (1u << 3)
#define ZIP_FLAG_STRONG_CRYPT (1u << 6)
#define ZIP_FLAG_CD_CRYPT     (1u << 13)

/* Fixed sizes of the records. */
#define ZIP_LOCAL_FIXED 30u /* local file header */
#define ZIP_EOCD_BYTES  22u /* end of central directory record */
#define ZIP_LOC_BYTES   20u /* ZIP64 end of central directory locator */
#define ZIP_Z64_BYTES   56u /* ZIP64 end of central directory record */

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

/* A 64-bit value for a "%llu" in a message. */
static inline unsigned long long zip_ull(uint64_t v)
{
    return (unsigned long long)v;
}

#endif
