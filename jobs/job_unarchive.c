/*
 * job_unarchive: the unarchive job's state machine. The manifest read and
 * the archive chosen (current or from the history), the directory read
 * first (ua_source.c), the flip to restoring, the entries restored
 * (ua_put.c), the checksum and entry count checked, the flip to active
 * (read back when its outcome is unknown), and on failure the cleanup and
 * the revert.
 */
#include "jobs/job_unarchive.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "jobs/job_int.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "jobs/ua_int.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "zip/zipr.h"

#define UA_RATIO_MIN_BYTES (1u << 20)

/* After a failed manifest write whose outcome is unknown (reply lost,
 * retries ended in 503 or a timeout): read it back. *landed when it holds
 * m's state and generation (etag then names it); *known false when it
 * could not be read either. */
static void state_read_back(struct ua_run *r, const struct mf *m, char *etag,
                            size_t etag_len, bool *landed, bool *known)
{
    struct wk_err e;
    char tag[sizeof(((struct store_stat *)0)->etag)] = "";
    struct mf *cur = calloc(1, sizeof(*cur));
    bool fetched = false;
    enum wk_code rc = WK_E_NOMEM;

    *landed = false;
    *known = false;
    wk_err_clear(&e);
    if (cur)
        rc = job_mf_get(r->ctx->store, r->mf_key, cur, &fetched, tag, &e);
    if (fetched) {
        /* one that does not parse is not ours either */
        *known = true;
        *landed = rc == WK_OK && cur->state == m->state &&
                  cur->generation == m->generation;
        if (*landed && tag[0]) /* its version, from the same GET */
            snprintf(etag, etag_len, "%s", tag);
        else if (*landed)
            *known = false; /* its version is unknown: no later write */
    }
    WK_LOG(WK_LOG_WARN, "unarchive.manifest_read_back",
           KV_STR("job_id", r->job->id), KV_STR("key", r->mf_key),
           KV_BOOL("landed", *landed), KV_BOOL("known", *known),
           KV_STR("msg", e.msg));
    free(cur);
}

/* Write m in state st over the version etag names; m (in memory) says
 * what the store holds afterwards either way; *unknown (may be NULL) when
 * the outcome could not be settled (then nothing may be undone). */
static enum wk_code put_state(struct ua_run *r, struct mf *m, enum mf_state st,
                              char *etag, size_t etag_len, bool *unknown,
                              struct wk_err *err)
{
    enum mf_state was = m->state;
    enum wk_code rc;

    if (unknown)
        *unknown = false;
    rc = job_fence(r->ctx, "unarchive.manifest", err);
    if (rc != WK_OK)
        return rc;
    m->state = st;
    m->generation++;
    rc = job_mf_put(r->ctx, r->ctx->store, r->mf_key, m, etag, etag_len, err);
    if (rc != WK_OK && rc != WK_E_CONFLICT) {
        bool landed = false, known = false;
        state_read_back(r, m, etag, etag_len, &landed, &known);
        if (landed && known) {
            wk_err_clear(err);
            rc = WK_OK;
        } else if (!known && unknown) {
            *unknown = true;
        }
    }
    if (rc != WK_OK) {
        m->state = was;
        m->generation--;
    }
    return rc;
}

/* Best effort: write m in state st (a repair or a revert); a failure is
 * logged, and leaves a state the next run handles. Noted in o when set.
 * Returns the write's outcome, its error in *e when e is set. */
static enum wk_code set_state(struct ua_run *r, struct mf *m, enum mf_state st,
                              char *etag, size_t etag_len, json_t *o,
                              struct wk_err *out)
{
    struct wk_err e;
    enum mf_state was = m->state;
    enum wk_code rc;

    wk_err_clear(&e);
    rc = put_state(r, m, st, etag, etag_len, NULL, &e);
    if (out)
        *out = e;
    if (rc != WK_OK) {
        WK_LOG(WK_LOG_WARN, "unarchive.manifest_state_kept",
               KV_STR("job_id", r->job->id),
               KV_STR("space_id", r->job->space_id),
               KV_STR("state", mf_state_name(was)), KV_STR("msg", e.msg));
        return rc;
    }
    WK_LOG(WK_LOG_INFO, "unarchive.manifest_state",
           KV_STR("job_id", r->job->id), KV_STR("space_id", r->job->space_id),
           KV_STR("from", mf_state_name(was)), KV_STR("to", mf_state_name(st)));
    if (o)
        json_object_set_new(o, "repaired", json_string(mf_state_name(was)));
    return WK_OK;
}

uint64_t job_unarchive_part_bytes(uint64_t entry_size, uint64_t configured)
{
    /* an entry of unknown size (a foreign archive without sizes) takes the
     * configured part size */
    return job_part_bytes(entry_size == UINT64_MAX ? 0 : entry_size,
                          configured);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds from the request (job_ctx.requested_ms, the enqueue) to
 * now; from the run's start t0 (monotonic) when the request time is
 * unknown. */
static int64_t since_request(const struct job_ctx *ctx, int64_t t0)
{
    struct timespec ts;
    int64_t now, ms;

    if (ctx->requested_ms <= 0)
        return mono_ms() - t0;
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    ms = now - ctx->requested_ms;
    return ms < 0 ? 0 : ms;
}

/* What makes a space usable, and comes first in our archives: sila.md,
 * space-v1/space.json, space-v1/secrets, space-v1/ops/... The first entry
 * that is none of them is the ready point. */
static bool ua_is_meta(const char *name)
{
    return strcmp(name, "sila.md") == 0 ||
           strcmp(name, "space-v1/space.json") == 0 ||
           strcmp(name, "space-v1/secrets") == 0 ||
           strncmp(name, "space-v1/ops/", 13) == 0;
}

/* The ready point: what is buffered written, then the manifest says
 * restoring + readyAt (fenced, over the version etag names), then
 * PROG_READY. From here on nothing is cleaned up on failure. */
static enum wk_code reach_ready(struct ua_run *r, struct mf *m, char *etag,
                                size_t etag_len, bool *unknown, int64_t t0,
                                int64_t *ready_ms, struct wk_err *err)
{
    const struct ua_cd *cd = r->want.cd;
    enum wk_code rc;

    /* what can still be checked before the space is usable: the entry
     * count (the checksum needs the whole archive) */
    if (cd && cd->n != cd->max)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive '%s' has %llu entries, the manifest says "
                          "%llu",
                          r->want.archive_key, (unsigned long long)cd->n,
                          (unsigned long long)cd->max);
    rc = ua_flush_pending(r, err);
    if (rc != WK_OK)
        return rc;
    m->ready_at = r->ctx->now ? r->ctx->now() : time(NULL);
    rc = put_state(r, m, MF_RESTORING, etag, etag_len, unknown, err);
    if (rc != WK_OK) {
        m->ready_at = 0;
        return rc;
    }
    r->want.ready = true;
    *ready_ms = since_request(r->ctx, t0);
    prog_milestone(&r->prog, PROG_READY, *ready_ms);
    WK_LOG(WK_LOG_INFO, "unarchive.ready", KV_STR("job_id", r->job->id),
           KV_STR("space_id", r->job->space_id),
           KV_INT("time_to_ready_ms", *ready_ms));
    /* test failpoint: a pause here keeps the space between ready and
     * complete (wanted paths are served right after it) */
    wk_fail_point("unarchive.ready");
    return ua_want_poll(r, true, err);
}

enum wk_code job_unarchive_run(const struct job *job, const struct job_ctx *ctx,
                               struct wk_buf *result, struct wk_err *err)
{
    const struct job_config *cfg = ctx->cfg;
    struct ua_run r;
    struct mf *m = NULL;
    struct mf_archive want;
    struct zipr *zr = NULL;
    struct zipr_limits lim;
    struct ua_cd cd;
    struct store_sha256 *cas = NULL;
    struct store_stat st;
    struct wk_buf mbuf;
    char sha[65];
    struct ua_keys existing = { NULL, 0, 0 };
    char mf_etag[80] = "";
    uint64_t nentries = 0;
    bool flipped = false, mf_unknown = false, has_space_json = false;
    int64_t t0 = mono_ms(), ready_ms = -1;
    enum wk_code rc;

    memset(&r, 0, sizeof(r));
    rrec_init(&r.rec);
    memset(&want, 0, sizeof(want));
    memset(&cd, 0, sizeof(cd));
    wk_buf_init(&mbuf, 1u << 20);
    r.job = job;
    r.ctx = ctx;
    prog_init(&r.prog, ctx->sink);

    if (!job_space_id_valid(job->space_id)) {
        rc = wk_err_set(err, WK_E_INVAL, "invalid spaceId");
        goto out;
    }
    snprintf(r.prefix, sizeof(r.prefix), "active/%s/", job->space_id);
    mf_key(job->space_id, r.mf_key, sizeof(r.mf_key));
    r.prog.st.phase = "reading manifest";
    prog_update(&r.prog, true);
    {
        unsigned fl = 0;
        rc = store_features(ctx->store, &fl, err);
        if (rc != WK_OK)
            goto out;
        r.cond_put = (fl & STORE_F_COND_PUT) != 0;
    }

    m = calloc(1, sizeof(*m));
    if (!m) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    /* with its version: the flip is written only over this one */
    rc = store_get_all_etag(ctx->store, r.mf_key, &mbuf, mf_etag, err);
    if (rc == WK_E_NOTFOUND) {
        wk_err_clear(err);
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "space '%s' has no manifest '%s': nothing to restore",
                        job->space_id, r.mf_key);
        goto out;
    }
    if (rc == WK_OK)
        rc = mf_parse(mbuf.data, mbuf.len, m, err);
    if (rc != WK_OK)
        goto out;

    if (!mf_in_archive(m)) {
        if (job->archive_key[0]) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "space '%s' is active: archive it before "
                            "restoring '%s'",
                            job->space_id, job->archive_key);
            goto out;
        }
        json_t *o = json_object();
        json_object_set_new(o, "noop", json_true());
        json_object_set_new(o, "reason", json_string("already active"));
        if (m->state == MF_ARCHIVING) {
            struct wk_err se;
            rc = set_state(&r, m, MF_ACTIVE, mf_etag, sizeof(mf_etag), o, &se);
            if (rc == WK_E_CONFLICT || rc == WK_E_FENCED) {
                /* the manifest changed since it was read: "already active"
                 * may no longer be true; the next run reads it again */
                json_decref(o);
                rc = wk_err_copy(err, &se);
                goto out;
            }
        }
        {
            /* usable and complete already (the objects under active/ are the
             * space, also while archiving): both at once */
            int64_t ms = since_request(ctx, t0);
            json_object_set_new(o, "timeToReadyMs", json_integer(ms));
            json_object_set_new(o, "timeToCompleteMs", json_integer(ms));
            prog_milestone(&r.prog, PROG_READY, ms);
            prog_milestone(&r.prog, PROG_COMPLETE, ms);
        }
        rc = job_result_take(result, o, err);
        if (rc == WK_OK)
            job_prog_done(&r.prog); /* (nothing counted: all zero) */
        goto out;
    }

    /* Which archive: the current one, or one named from the history. */
    if (!mf_find_archive(m, job->archive_key, &want)) {
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "archive '%s' is not in the manifest of space "
                        "'%s' (current or history)",
                        job->archive_key, job->space_id);
        goto out;
    }

    /* One restore at a time per space: a restore that did not finish
     * (restoring) is finished first, never mixed with another archive's
     * files (a manifest without restoringArchive restores the current). */
    if (m->state == MF_RESTORING) {
        const char *was =
            m->restoring_archive[0] ? m->restoring_archive : m->archive_key;
        if (strcmp(was, want.key) != 0) {
            rc = wk_err_set(err, WK_E_CONFLICT,
                            "space '%s' is being restored from '%.100s': "
                            "finish that restore (run it again) before "
                            "restoring another archive",
                            job->space_id, was);
            goto out;
        }
    }
    snprintf(m->restoring_archive, sizeof(m->restoring_archive), "%s",
             want.key);
    /* The archive's first bytes are on their way while the steps below
     * take their round trips (reads only: nothing is written before the
     * flip to restoring). */
    r.src.st = ctx->store;
    r.src.key = want.key;
    r.src.size = want.size;
    r.src.read_bytes = cfg->read_bytes;
    r.src.n_reads = cfg->reads;
    rc = ua_src_start(&r.src, err);
    if (rc != WK_OK)
        goto out;

    /* Objects already under active/ are newer than the archive (written
     * after it was made) or were restored by an earlier run that died:
     * either way they are kept as they are, never overwritten. */
    rc = ua_keys_load(ctx->store, r.prefix, &existing, err);
    if (rc != WK_OK)
        goto out;
    r.existing = &existing;
    rc = store_head(ctx->store, want.key, &st, err);
    if (rc != WK_OK)
        goto out;
    if (st.size != want.size) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive '%s' is %llu bytes, the manifest says %llu",
                        want.key, (unsigned long long)st.size,
                        (unsigned long long)want.size);
        goto out;
    }

    r.pending = calloc(cfg->window_objects, sizeof(*r.pending));
    if (!r.pending) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg->window_objects; i++)
        wk_buf_init(&r.pending[i].data, cfg->chunk_bytes);
    if (want.enc.on) {
        /* opened before anything changes: without the key the space
         * simply stays archived */
        struct seal_dk dk;
        rc = mf_open_key(&want, job->space_id, ctx->keys, &dk, err);
        if (rc == WK_OK) {
            rc = seal_dec_new(&dk, want.size, &r.src.dec, err);
            if (rc == WK_OK)
                rc = ua_cd_preread(job, ctx, &want, &dk, &cd, err);
            if (rc == WK_OK) {
                /* kept for entries wanted ahead of order (ua_want.c) */
                r.want.dk = malloc(sizeof(*r.want.dk));
                if (r.want.dk)
                    *r.want.dk = dk;
                else
                    rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
                r.want.sealed = true;
            }
            seal_dk_wipe(&dk);
        }
        if (rc != WK_OK) {
            if (rc != WK_E_INVAL) /* (INVAL names the archive's key) */
                wk_err_prefix(err, "archive '%s'", want.key);
            goto out;
        }
        wk_buf_init(&r.src.plain, want.enc.chunk_bytes);
    } else {
        rc = ua_cd_preread(job, ctx, &want, NULL, &cd, err);
        if (rc != WK_OK)
            goto out;
    }
    rc = store_sha256_new(&r.src.hash, err);
    if (rc == WK_OK)
        rc = store_sha256_new(&cas, err);
    if (rc != WK_OK)
        goto out;
    lim.max_total_bytes = want.uncompressed_size;
    lim.max_entries = want.file_count;
    lim.max_ratio = cfg->max_ratio;
    lim.ratio_min_bytes = UA_RATIO_MIN_BYTES;
    rc = zipr_new(ua_src_read, &r.src, &lim, &zr, err);
    if (rc != WK_OK)
        goto out;
    /* our own archive: its central directory, not the ratio, bounds it */
    zipr_set_declared(zr, ua_cd_declared, &cd);

    r.want.cd = &cd;
    r.want.keys = &existing;
    r.want.archive_key = want.key;
    r.want.archive_size = want.size;
    if (m->state == MF_ARCHIVED) {
        /* Readers wait for "ready"; a run that dies from here on leaves
         * "restoring" and its retry carries on. */
        m->ready_at = 0;
        rc = put_state(&r, m, MF_RESTORING, mf_etag, sizeof(mf_etag),
                       &mf_unknown, err);
        if (rc != WK_OK)
            goto out;
    } else if (m->ready_at != 0) {
        /* an earlier run got past the ready point: usable now (what it
         * wrote is kept, the rest comes), so ready again at once */
        r.want.ready = true;
        ready_ms = since_request(ctx, t0);
        prog_milestone(&r.prog, PROG_READY, ready_ms);
        WK_LOG(WK_LOG_INFO, "unarchive.ready", KV_STR("job_id", job->id),
               KV_STR("space_id", job->space_id), KV_BOOL("resumed", true),
               KV_INT("time_to_ready_ms", ready_ms));
    }

    r.prog.st.phase = "restoring";
    r.prog.st.bytes_total = want.uncompressed_size;
    r.prog.st.files_total = want.file_count;
    prog_update(&r.prog, true);
    WK_LOG(WK_LOG_INFO, "unarchive.started", KV_STR("job_id", job->id),
           KV_STR("space_id", job->space_id), KV_STR("archive_key", want.key),
           KV_INT("files", want.file_count),
           KV_INT("bytes", want.uncompressed_size));
    for (;;) {
        struct zipr_entry e;
        bool eof = false;
        rc = zipr_next(zr, &e, &eof, err);
        if (rc != WK_OK || eof)
            break;
        if (strcmp(e.name, "space-v1/space.json") == 0)
            has_space_json = true;
        /* (an archive without space.json is no usable space before the
         * end: ready only once everything is verified) */
        if (!r.want.ready && has_space_json && !ua_is_meta(e.name)) {
            rc = reach_ready(&r, m, mf_etag, sizeof(mf_etag), &mf_unknown, t0,
                             &ready_ms, err);
            if (rc != WK_OK)
                break;
        }
        nentries++;
        rc = ua_restore_entry(&r, zr, &e, cas, err);
        if (rc != WK_OK)
            break;
        r.want.next_index = nentries;
        rc = ua_want_poll(&r, false, err);
        if (rc != WK_OK)
            break;
    }
    if (rc == WK_OK)
        rc = ua_flush_pending(&r, err);
    if (rc != WK_OK)
        goto out;
    if (nentries != want.file_count) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive '%s' has %llu entries, the manifest says "
                        "%llu",
                        want.key, (unsigned long long)nentries,
                        (unsigned long long)want.file_count);
        goto out;
    }
    /* The rest (central directory) still counts for the checksum. */
    for (;;) {
        const void *p;
        size_t n;
        rc = ua_src_read(&r.src, &p, &n, err);
        if (rc != WK_OK || n == 0)
            break;
    }
    if (rc != WK_OK)
        goto out;
    store_sha256_final_hex(r.src.hash, sha);
    if (strcmp(sha, want.checksum) != 0) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive '%s': SHA-256 %s does not match the "
                        "manifest's %s",
                        want.key, sha, want.checksum);
        goto out;
    }

    /* Not ready before the end (only metadata, or no space.json): ready
     * now that everything is verified, then complete. */
    if (!r.want.ready) {
        rc = reach_ready(&r, m, mf_etag, sizeof(mf_etag), &mf_unknown, t0,
                         &ready_ms, err);
        if (rc != WK_OK)
            goto out;
    }
    /* Everything verified: the space is active again. */
    r.prog.st.phase = "activating";
    prog_update(&r.prog, true);
    /* test failpoint: paused here, a successor may finish the restore */
    wk_fail_point("unarchive.before_flip");
    {
        time_t before = m->restored_at, ready_at = m->ready_at;
        m->restored_at = ctx->now ? ctx->now() : time(NULL);
        m->ready_at = 0; /* (active: complete) */
        rc = put_state(&r, m, MF_ACTIVE, mf_etag, sizeof(mf_etag), &mf_unknown,
                       err);
        if (rc != WK_OK) {
            m->restored_at = before; /* still restoring */
            m->ready_at = ready_at;
            goto out;
        }
    }
    flipped = true;
    if (!want.enc.on && r.src.etag[0] && !r.src.etag_mixed) {
        /* The restore record: what the next archive may copy from this
         * archive instead of reading it again. Best effort: without it,
         * that archive reads every object. */
        struct wk_err rerr;
        wk_err_clear(&rerr);
        if (rrec_put(ctx->store, &r.rec, job->space_id, want.key, r.src.etag,
                     want.checksum, want.size, job->id, m->restored_at,
                     &rerr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "unarchive.record_failed",
                   KV_STR("job_id", job->id), KV_STR("msg", rerr.msg));
        else
            WK_LOG(WK_LOG_INFO, "unarchive.recorded", KV_STR("job_id", job->id),
                   KV_INT("objects", r.rec.n));
    }
    {
        int64_t ms = since_request(ctx, t0);
        json_t *o = json_object();
        prog_milestone(&r.prog, PROG_COMPLETE, ms);
        json_object_set_new(o, "archiveKey", json_string(want.key));
        /* (an entry served ahead of order is restored, not kept) */
        json_object_set_new(
            o, "restored",
            json_integer((json_int_t)(r.n_written + r.want.n_served_put)));
        json_object_set_new(
            o, "kept",
            json_integer((json_int_t)(r.n_kept - r.want.n_served_put)));
        json_object_set_new(o, "keptUserWrites",
                            json_integer((json_int_t)r.n_user_kept));
        json_object_set_new(o, "bytes",
                            json_integer((json_int_t)zipr_total_bytes(zr)));
        json_object_set_new(o, "checksum", json_string(sha));
        json_object_set_new(o, "timeToReadyMs", json_integer(ready_ms));
        json_object_set_new(o, "timeToCompleteMs", json_integer(ms));
        rc = job_result_take(result, o, err);
        WK_LOG(WK_LOG_INFO, "unarchive.restored", KV_STR("job_id", job->id),
               KV_STR("space_id", job->space_id),
               KV_STR("archive_key", want.key), KV_INT("files", r.n_written),
               KV_INT("served", r.want.n_served_put),
               KV_INT("time_to_ready_ms", ready_ms),
               KV_INT("time_to_complete_ms", ms));
    }
    r.prog.st.phase = "done";
    r.prog.st.bytes_done = r.prog.st.bytes_total;
    r.prog.st.files_done = r.prog.st.files_total;
    prog_update(&r.prog, true);
out:
    /* Fenced: the successor owns what was written, nothing is undone. A
     * flip of unknown outcome may have made the space active: kept. Once
     * ready, users may have written: the space stays restoring (readyAt),
     * everything is kept, and the next run finishes it. */
    if (rc != WK_OK && rc != WK_E_FENCED && !flipped && !mf_unknown &&
        !r.want.ready)
        ua_cleanup_written(&r);
    if (rc != WK_OK && rc != WK_E_FENCED && !flipped && !mf_unknown &&
        !r.want.ready && m && m->state == MF_RESTORING &&
        rc != WK_E_CONFLICT) /* a conflict: someone else has it now */
        (void)set_state(&r, m, MF_ARCHIVED, mf_etag, sizeof(mf_etag), NULL,
                        NULL);
    if (rc != WK_OK && r.want.ready)
        WK_LOG(WK_LOG_WARN, "unarchive.left_ready", KV_STR("job_id", job->id),
               KV_STR("space_id", job->space_id), KV_STR("msg", err->msg));
    zipr_free(zr);
    ua_want_release(&r.want);
    ua_cd_release(&cd);
    store_sha256_free(cas);
    store_sha256_free(r.src.hash);
    seal_dec_free(r.src.dec);
    wk_buf_release(&r.src.plain);
    ua_src_close(&r.src);
    ua_put_release(&r);
    rrec_release(&r.rec);
    for (size_t i = 0; i < r.n_written; i++)
        free(r.written[i]);
    free(r.written);
    ua_keys_release(&existing);
    wk_buf_release(&mbuf);
    free(m);
    return rc;
}
