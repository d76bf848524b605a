/*
 * rekey: retire an old master key without touching any archive. The data
 * key of every sealed archive a space's manifest names (current and
 * history) that is wrapped under another key than the keyring's current
 * one is unwrapped and wrapped again under the current key; the manifest is
 * then written once, conditionally over the version read (a job that
 * writes it meanwhile wins, and rekey fails with WK_E_CONFLICT). The
 * archives themselves, their checksums and sizes stay as they are.
 *
 * The caller keeps jobs off the space while this runs (the CLI takes the
 * space's lock). Blocks on the store. Plain data out; nothing to free.
 */
#ifndef WK_JOBS_REKEY_H
#define WK_JOBS_REKEY_H

#include <stdbool.h>

#include "common/wk_err.h"
#include "storage/seal.h"

struct store;

struct rekey_out {
    unsigned sealed;    /* sealed archives the manifest names */
    unsigned rewrapped; /* of those, wrapped again (0: nothing to do) */
    bool has_manifest;  /* false: the space has no manifest */
};

/* dry_run: count, write nothing. WK_E_INVAL when a key the manifest names
 * is not in kr (nothing is written then). */
enum wk_code job_rekey(struct store *st, const struct seal_keyring *kr,
                       const char *space_id, bool dry_run,
                       struct rekey_out *out, struct wk_err *err);

#endif
