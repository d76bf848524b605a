/*
 * zcat: read one file out of an archived space without restoring it, with
 * HTTP range requests: the end of the archive, its central directory, then
 * the one entry (libarchive's seekable ZIP reader with read/seek callbacks
 * over ranged GETs). Bytes transferred do not depend on the archive's size.
 *
 * Blocks while reading. The sink receives the entry's bytes in order; a
 * sink error stops the read and is returned. WK_E_INVAL when name is not a
 * plain relative path; WK_E_NOTFOUND when the archive has no entry of that
 * name; WK_E_CORRUPT for a bad archive or CRC. The CRC can only be checked
 * once all the data has been read, so on WK_E_CORRUPT the sink may already
 * have had the entry's bytes: the caller must report the failure.
 *
 * Cost: finding an entry visits the local header of every entry stored
 * before it (libarchive's seekable reader has no lookup by name), so it
 * grows with that number of entries, never with the archive's size.
 */
#ifndef WK_ZIP_ZCAT_H
#define WK_ZIP_ZCAT_H

#include <stdint.h>

#include "common/wk_err.h"
#include "storage/seal.h"
#include "storage/store.h"

struct zcat_stats {
    uint64_t bytes_fetched; /* archive bytes transferred from the store */
    unsigned requests;      /* ranged GETs issued */
};

/* Read entry `name` of the ZIP object `archive_key` (archive_size stored
 * bytes, from the manifest or a HEAD) and stream it to sink. A sealed
 * archive (storage/seal.h) is read with its data key dk, NULL for a plain
 * ZIP: each range becomes the whole chunks that cover it, every one
 * authenticated before a byte of it is used (a tampered chunk is
 * WK_E_CORRUPT). stats may be NULL. */
enum wk_code zcat_read(struct store *st, const char *archive_key,
                       uint64_t archive_size, const struct seal_dk *dk,
                       const char *name, store_sink_cb sink, void *ud,
                       struct zcat_stats *stats, struct wk_err *err);

#endif
