/*
 * rrec: the restore record metadata/<spaceId>.restored.jsonl (PROTOCOL.md
 * "Restore record"). A restore notes, for every object it wrote with a
 * single PUT, the entry it came from (its name) and the ETag that PUT got
 * from the store; the next archive of the space takes an object whose
 * listed ETag is still that one as unchanged and copies its entry from the
 * old archive instead of reading the object again (jobs/arch_prev.c).
 *
 * The record only ever states what its writer saw in a PUT's own
 * response: object X had ETag E right after it was written with the bytes
 * of entry X of archive A. That stays true whatever happens later (a user
 * rewriting X gives it another ETag), so the record needs no fencing and a
 * stale or partial record is never wrong, only less useful. Never taken
 * from a listing, which could attribute a user's write to the archive.
 *
 * Format: JSON Lines. Line 1 the header
 *   {"format":"sila.restored/1","spaceId":…,"archiveKey":…,
 *    "archiveEtag":…,"checksum":…,"size":…,"jobId":…,
 *    "restoredAt":"…Z","objects":N}
 * (archiveEtag: the ETag of the archive version the restore read, every
 * GET of it, and verified against checksum)
 * then one line per object {"name":"space-v1/…","etag":"…"}, in the order
 * the restore wrote them.
 *
 * Memory: the writer holds the lines (about 100 bytes per object, capped by
 * RREC_MAX_BYTES: past it nothing more is noted and no record is written);
 * a loaded table holds every name and ETag once, sorted. Blocks on the
 * store in rrec_put and rrec_load only.
 */
#ifndef WK_JOBS_RREC_H
#define WK_JOBS_RREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"

struct store;

#define RREC_FORMAT    "sila.restored/1"
#define RREC_MAX_BYTES (64u << 20)

/* "metadata/<spaceId>.restored.jsonl" into buf. */
void rrec_key(const char *space_id, char *buf, size_t len);

/* The lines being collected by a restore (embedded: rrec_init). */
struct rrec {
    struct wk_buf lines;
    size_t n;
    bool full; /* past RREC_MAX_BYTES: no record will be written */
};

void rrec_init(struct rrec *w);
/* Note that name (relative to active/<id>/) was written and got etag.
 * Fails only for lack of memory; an empty etag is not noted. */
enum wk_code rrec_note(struct rrec *w, const char *name, const char *etag,
                       struct wk_err *err);
/* PUT the record (the header, then the lines) over any older one. */
enum wk_code rrec_put(struct store *st, const struct rrec *w,
                      const char *space_id, const char *archive_key,
                      const char *archive_etag, const char *checksum,
                      uint64_t size, const char *job_id, time_t restored_at,
                      struct wk_err *err);
void rrec_release(struct rrec *w);

/* A loaded record: its header and its objects, sorted by name. */
struct rrec_obj {
    char *name; /* owned */
    char *etag; /* owned */
};
struct rrec_table {
    char archive_key[256];
    char archive_etag[80];
    char checksum[65];
    uint64_t size;
    struct rrec_obj *v; /* owned */
    size_t n;
};

/* Read and check the record of space_id. *found false (WK_OK) when there
 * is none; a record that is not of this format, of another space, or
 * malformed is WK_E_CORRUPT (the caller goes on without it). */
enum wk_code rrec_load(struct store *st, const char *space_id,
                       struct rrec_table *t, bool *found, struct wk_err *err);
/* The ETag noted for name, or NULL. */
const char *rrec_etag(const struct rrec_table *t, const char *name);
void rrec_table_release(struct rrec_table *t);

#endif
