/*
 * zsniff: should an object go into the archive stored rather than
 * deflated? Deflate costs ~16-40 MiB/s of CPU per core and earns nothing
 * on content that is already compressed (JPEG, PNG, video, ZIP...), which
 * is about half the bytes of a typical space.
 *
 * zsniff_compressed() looks at the first bytes: a known compressed format
 * by its magic number, or else a sample whose byte entropy is near 8 bits.
 * (Whether a stored entry is safe for a streaming reader is no question
 * any more: zipw writes stored entries with their CRC-32 and sizes in the
 * local header and no data descriptor, so no content can end its own
 * entry early.)
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

#endif
