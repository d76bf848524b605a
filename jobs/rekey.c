/* rekey: re-wrap the data keys a space's manifest names under the
 * keyring's current master key (see rekey.h). */
#include "jobs/rekey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job.h"
#include "jobs/job_int.h"
#include "jobs/manifest.h"
#include "storage/store.h"

/* Wrap e again under the current key when another key wraps it. */
static enum wk_code rewrap(const struct seal_keyring *kr, const char *space_id,
                           struct seal_info *e, bool dry_run,
                           struct rekey_out *out, struct wk_err *err)
{
    struct seal_dk dk;
    struct seal_info fresh;
    enum wk_code rc;

    if (!e->on)
        return WK_OK;
    out->sealed++;
    if (strcmp(e->key_id, seal_keyring_id(kr, 0)) == 0)
        return WK_OK;
    /* opened in a dry run too: a key that is missing says so now */
    rc = seal_dk_open(kr, space_id, e, &dk, err);
    if (rc == WK_OK && !dry_run)
        rc = seal_dk_wrap(kr, space_id, &dk, &fresh, err);
    seal_dk_wipe(&dk);
    if (rc != WK_OK)
        return rc;
    if (!dry_run)
        *e = fresh;
    out->rewrapped++;
    return WK_OK;
}

enum wk_code job_rekey(struct store *st, const struct seal_keyring *kr,
                       const char *space_id, bool dry_run,
                       struct rekey_out *out, struct wk_err *err)
{
    char key[JOB_SPACE_ID_MAX + 32], etag[80];
    struct store_stat sst;
    struct wk_buf b;
    struct mf *m = NULL;
    enum wk_code rc;

    memset(out, 0, sizeof(*out));
    if (!job_space_id_valid(space_id))
        return wk_err_set(err, WK_E_INVAL, "invalid spaceId");
    if (seal_keyring_count(kr) == 0)
        return wk_err_set(err, WK_E_INVAL,
                          "rekey needs SILA_ENCRYPTION_KEY_FILE");
    mf_key(space_id, key, sizeof(key));
    wk_buf_init(&b, 1u << 20);
    m = calloc(1, sizeof(*m));
    if (!m) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    /* the version first: the write goes only over this one */
    rc = store_head(st, key, &sst, err);
    if (rc == WK_E_NOTFOUND) {
        wk_err_clear(err);
        rc = WK_OK;
        goto out;
    }
    if (rc == WK_OK)
        rc = store_get_all(st, key, &b, err);
    if (rc == WK_OK)
        rc = mf_parse(b.data, b.len, m, err);
    if (rc != WK_OK)
        goto out;
    out->has_manifest = true;
    snprintf(etag, sizeof(etag), "%s", sst.etag);
    rc = rewrap(kr, space_id, &m->enc, dry_run, out, err);
    for (size_t i = 0; rc == WK_OK && i < m->n_history; i++)
        rc = rewrap(kr, space_id, &m->history[i].enc, dry_run, out, err);
    if (rc != WK_OK || dry_run || out->rewrapped == 0)
        goto out;
    m->generation++;
    rc = job_mf_put(NULL, st, key, m, etag, sizeof(etag), err);
out:
    wk_buf_release(&b);
    free(m);
    return rc;
}
