/*
 * zsniff: should an object go into the archive stored rather than
 * deflated? Deflate costs ~16-40 MiB/s of CPU per core and earns nothing
 * on content that is already compressed (JPEG, PNG, video, ZIP...), which
 * is about half the bytes of a typical space.
 *
 * zsniff_compressed() looks at the first bytes: a known compressed format
 * by its magic number, or else a sample whose byte entropy is near 8 bits.
 * zsniff_store_safe() says whether a stored entry holding these exact
 * bytes can be read back by a streaming ZIP reader: libarchive's writer
 * ends a stored entry with a data descriptor, and a streaming reader finds
 * its end by scanning for the descriptor's signature "PK\7\8", so the data
 * itself must not contain that signature.
 */
#ifndef WK_ZIP_ZSNIFF_H
#define WK_ZIP_ZSNIFF_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of the sample the entropy is measured on. */
#define ZSNIFF_SAMPLE 4096

/* Already compressed (by magic number or entropy of the first bytes)? The
 * name of the format, or "entropy", goes to *why (may be NULL). */
bool zsniff_compressed(const void *p, size_t n, const char **why);

/* p[0..n) contains no "PK\7\8" (data descriptor signature). */
bool zsniff_store_safe(const void *p, size_t n);

/* The same question for an object too big to hold, asked while its bytes
 * stream into a stored entry: libarchive's streaming reader ends a stored
 * entry at the first "PK\7\8" followed by the CRC-32 of the data before
 * it, so only such a place is a hazard (random data holds one with odds of
 * 2^-32 per signature; a crafted file can). The last 7 bytes count as a
 * hazard when they hold a signature at all (the real descriptor follows
 * them). Feed the data in order; any false result means: do not store. */
struct zsniff_desc {
    unsigned long crc;     /* CRC-32 of the data before tail */
    unsigned char tail[7]; /* the last bytes fed, not yet judged */
    size_t ntail;
};
void zsniff_desc_init(struct zsniff_desc *d);
bool zsniff_desc_feed(struct zsniff_desc *d, const void *p, size_t n);
bool zsniff_desc_end(const struct zsniff_desc *d);

#endif
