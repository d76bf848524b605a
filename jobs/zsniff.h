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
#ifndef WK_JOBS_ZSNIFF_H
#define WK_JOBS_ZSNIFF_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of the sample the entropy is measured on. */
#define ZSNIFF_SAMPLE 4096

/* Already compressed (by magic number or entropy of the first bytes)? The
 * name of the format, or "entropy", goes to *why (may be NULL). */
bool zsniff_compressed(const void *p, size_t n, const char **why);

/* p[0..n) contains no "PK\7\8" (data descriptor signature). */
bool zsniff_store_safe(const void *p, size_t n);

#endif
