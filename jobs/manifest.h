/*
 * mf: the manifest metadata/<spaceId>.json, the public record of a space's
 * tier (docs/PROTOCOL.md lists every field). Parse and serialise with
 * jansson; struct mf is plain data (no allocation), so nothing to free.
 * Parsing is strict about the fields it knows (types, ranges, formats)
 * and ignores fields it does not know, so newer writers stay readable.
 */
#ifndef WK_JOBS_MANIFEST_H
#define WK_JOBS_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "storage/seal.h"

#define MF_VERSION "1.0"

/* A space's tier. The objects under active/ are the space while it is
 * active or archiving (an archive is being made; nothing is deleted before
 * archived); the archive is the space while it is archived or restoring
 * (objects are being written back; the space is not ready). */
enum mf_state {
    MF_ACTIVE = 0,
    MF_ARCHIVED = 1,
    MF_ARCHIVING = 2,
    MF_RESTORING = 3
};

/* Earlier archives kept for restore (newest first), at most this many. */
#define MF_HISTORY_MAX 16

struct mf_archive {
    char key[256];     /* "archived/<spaceId>/workspace-<stamp>.zip" */
    char checksum[65]; /* lowercase hex SHA-256 */
    uint64_t size;
    uint64_t uncompressed_size;
    uint64_t file_count;
    time_t archived_at;
    struct seal_info enc; /* "encryption"; enc.on false: a plain ZIP */
};

struct mf {
    char version[16]; /* "1.0" */
    char space_id[129];
    enum mf_state state;
    time_t created_at; /* space creation, else oldest object time */
    time_t archived_at;
    time_t restored_at;   /* 0 = absent */
    char compression[16]; /* "deflate" */
    /* The current archive (archived, restoring; active after a restore;
     * archiving: the last one). All empty or 0 when the space has never
     * been archived, which only an active or archiving manifest can say. */
    char archive_key[256];
    char checksum[65]; /* lowercase hex SHA-256 of the ZIP object */
    uint64_t size;     /* bytes of the ZIP object */
    uint64_t uncompressed_size;
    uint64_t file_count;
    /* "encryption": the current archive is sealed (client-side encryption,
     * storage/seal.h); enc.on false: it is a plain ZIP */
    struct seal_info enc;
    uint64_t generation; /* grows by one with every manifest write; 0 when
                            absent (written by an older version) */
    /* "restoringArchive": the key of the archive being restored (the
     * current one or one from the history), written with state restoring
     * only; "" when absent (an older writer: the current archive) */
    char restoring_archive[256];
    /* "readyAt": when the restore had sila.md, space.json, secrets and every
     * ops/ object in place (the space is usable, blobs may be missing);
     * written with state restoring only, 0 when absent (not ready yet) */
    time_t ready_at;
    size_t n_history;
    struct mf_archive history[MF_HISTORY_MAX]; /* older archives, newest
                                                  first ("history") */
};

/* Key of a space's manifest: "metadata/<spaceId>.json" into buf. */
void mf_key(const char *space_id, char *buf, size_t len);

/* Serialise to JSON (pretty, keys in documented order, trailing newline). */
enum wk_code mf_to_json(const struct mf *m, struct wk_buf *out,
                        struct wk_err *err);

/* Parse and validate; err names the first bad field. */
enum wk_code mf_parse(const char *json, size_t len, struct mf *out,
                      struct wk_err *err);

const char *mf_state_name(enum mf_state s);

/* The current archive as one record (the form of a history entry). */
void mf_current(const struct mf *m, struct mf_archive *out);

/* The data key of sealed archive a of space_id, from kr: WK_E_INVAL naming
 * the key id when kr is NULL or lacks it, WK_E_CORRUPT when the wrapped key
 * does not authenticate (see seal_dk_open). */
enum wk_code mf_open_key(const struct mf_archive *a, const char *space_id,
                         const struct seal_keyring *kr, struct seal_dk *dk,
                         struct wk_err *err);

/* The archive named key: the current one (also for key "") or one from
 * the history. False when the manifest names no such archive. */
bool mf_find_archive(const struct mf *m, const char *key,
                     struct mf_archive *out);

/* The archive, not the objects under active/, is the space's content
 * (archived or restoring). */
static inline bool mf_in_archive(const struct mf *m)
{
    return m->state == MF_ARCHIVED || m->state == MF_RESTORING;
}

#endif
