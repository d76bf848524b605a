/*
 * job: the job spec (parsing, validation, defaults), the dispatch to the
 * three runners, and the small helpers they share (job_int.h): the
 * result, the fenced manifest write, cancel and fence checks, the last
 * progress event and the batched delete.
 */
#include "jobs/job.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job_archive.h"
#include "jobs/job_int.h"
#include "jobs/job_migrate.h"
#include "jobs/job_unarchive.h"
#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "storage/store.h"

#define MIB               (1024u * 1024u)
#define S3_MIN_PART_BYTES (5u * MIB)
#define S3_MAX_PARTS      10000u

void job_config_defaults(struct job_config *cfg)
{
    cfg->part_bytes = 5u * MIB;
    cfg->parts_in_flight = 2;
    cfg->window_bytes = 16u * MIB;
    cfg->window_objects = 64;
    cfg->chunk_bytes = 8u * MIB;
    cfg->reads = 4;
    cfg->read_bytes = 2u * MIB;
    cfg->deflate_level = 1;
    cfg->keep_archives = 3;
    cfg->max_ratio = 1000;
    cfg->archive_tries = 3;
}

/* v within [lo, hi]; hi (the setting itself) wins over the floor lo, so
 * that nothing grows */
static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    if (lo > hi)
        lo = hi;
    return v < lo ? lo : v > hi ? hi : v;
}

void job_config_shared(struct job_config *cfg)
{
    cfg->window_bytes =
        clamp_u64(cfg->window_bytes / 4, 1u * MIB, cfg->window_bytes);
    cfg->chunk_bytes =
        clamp_u64(cfg->chunk_bytes / 2, 1u * MIB,
                  cfg->chunk_bytes < 4u * MIB ? cfg->chunk_bytes : 4u * MIB);
    cfg->read_bytes =
        clamp_u64(cfg->read_bytes / 4, 256u * 1024u, cfg->read_bytes);
    cfg->parts_in_flight =
        cfg->parts_in_flight / 4 ? cfg->parts_in_flight / 4 : 1;
}

static bool id_chars_valid(const char *s, size_t max, const char *extra)
{
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        char c = *p;
        if (n >= max)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr(extra, c)))
            return false;
    }
    return n > 0;
}

bool job_space_id_valid(const char *s)
{
    return id_chars_valid(s, JOB_SPACE_ID_MAX, "._-") && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

bool job_id_valid(const char *s)
{
    return id_chars_valid(s, JOB_ID_MAX, "._:-");
}

const char *job_type_name(enum job_type t)
{
    switch (t) {
    case JOB_ARCHIVE:
        return "archive";
    case JOB_UNARCHIVE:
        return "unarchive";
    case JOB_MIGRATE:
        return "migrate";
    }
    return "unknown";
}

/* A printable, bounded rendering of an untrusted string for messages. */
static void quote_untrusted(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '\'') {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static enum wk_code get_string(json_t *root, const char *field, bool required,
                               const char **out, size_t *len,
                               struct wk_err *err)
{
    json_t *v = json_object_get(root, field);
    *out = NULL;
    if (!v) {
        if (required)
            return wk_err_set(err, WK_E_INVAL, "job field '%s' is missing",
                              field);
        return WK_OK;
    }
    if (!json_is_string(v))
        return wk_err_set(err, WK_E_INVAL, "job field '%s' must be a string",
                          field);
    *out = json_string_value(v);
    *len = json_string_length(v);
    return WK_OK;
}

/* s (slen bytes, from JSON) is exactly word: no NUL byte inside. */
static bool str_is(const char *s, size_t slen, const char *word)
{
    return strcmp(s, word) == 0 && strlen(s) == slen;
}

/* field's value s (slen bytes) is refused: quoted as it came (it is
 * untrusted), then what is wrong with it (why, appended as it is). */
static enum wk_code value_refused(const char *field, const char *s, size_t slen,
                                  const char *why, struct wk_err *err)
{
    char shown[200];

    quote_untrusted(s, slen, shown, sizeof(shown));
    return wk_err_set(err, WK_E_INVAL, "job field '%s': '%s'%s", field, shown,
                      why);
}

/* An optional field that is one of two words (in the message's order):
 * *pick is the index of the one given, unchanged when the field is not. */
static enum wk_code get_choice(json_t *root, const char *field,
                               const char *const words[2], int *pick,
                               struct wk_err *err)
{
    const char *s;
    size_t slen = 0;
    char shown[200];
    enum wk_code rc = get_string(root, field, false, &s, &slen, err);

    if (rc != WK_OK || !s)
        return rc;
    for (int i = 0; i < 2; i++)
        if (str_is(s, slen, words[i])) {
            *pick = i;
            return WK_OK;
        }
    quote_untrusted(s, slen, shown, sizeof(shown));
    return wk_err_set(err, WK_E_INVAL,
                      "job field '%s': expected \"%s\" or \"%s\", got '%s'",
                      field, words[0], words[1], shown);
}

/* "source", "target", "overwrite": required / optional for migrate,
 * refused for the other types. */
static enum wk_code parse_migrate(json_t *root, struct job *out,
                                  struct wk_err *err)
{
    static const char *const fields[] = { "source", "target", "overwrite" };
    static const char *const targets[2] = { "active", "archived" };
    const char *s;
    size_t slen = 0;
    char why[160], msg[170];
    int target = 0;
    json_t *v;
    enum wk_code rc;

    if (out->type != JOB_MIGRATE) {
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            if (json_object_get(root, fields[i]))
                return wk_err_set(err, WK_E_INVAL,
                                  "job field '%s' is only for migrate",
                                  fields[i]);
        return WK_OK;
    }
    rc = get_string(root, "source", true, &s, &slen, err);
    if (rc != WK_OK)
        return rc;
    if (strlen(s) != slen)
        snprintf(why, sizeof(why), "NUL byte in the URL");
    if (strlen(s) != slen ||
        !job_migrate_url_valid(s, false, out->source, sizeof(out->source), why,
                               sizeof(why))) {
        snprintf(msg, sizeof(msg), ": %s", why);
        return value_refused("source", s, slen, msg, err);
    }
    rc = get_choice(root, "target", targets, &target, err);
    if (rc != WK_OK)
        return rc;
    out->target = target == 1 ? JOB_TARGET_ARCHIVED : JOB_TARGET_ACTIVE;
    v = json_object_get(root, "overwrite");
    if (v && !json_is_boolean(v))
        return wk_err_set(err, WK_E_INVAL,
                          "job field 'overwrite' must be true or false");
    out->overwrite = v && json_is_true(v);
    return WK_OK;
}

enum wk_code job_parse(const char *json, size_t len, struct job *out,
                       struct wk_err *err)
{
    static const char *const priorities[2] = { "urgent", "normal" };
    json_error_t jerr;
    json_t *root = NULL;
    const char *s;
    size_t slen = 0;
    char shown[200];
    int priority = 1;
    enum wk_code rc = WK_OK;

    memset(out, 0, sizeof(*out));
    if (len > JOB_JSON_MAX)
        return wk_err_set(err, WK_E_INVAL,
                          "job spec is %zu bytes, over the limit of %u", len,
                          JOB_JSON_MAX);
    /* JSON_REJECT_DUPLICATES: {"spaceId":"a","spaceId":"b"} is ambiguous */
    /* JSON_ALLOW_NUL: "\u0000" is refused below, naming the field */
    root =
        json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return wk_err_set(err, WK_E_INVAL, "job spec is not valid JSON: %s",
                          jerr.text);
    if (!json_is_object(root)) {
        rc = wk_err_set(err, WK_E_INVAL, "job spec must be a JSON object");
        goto out;
    }

    rc = get_string(root, "id", false, &s, &slen, err);
    if (rc != WK_OK)
        goto out;
    if (s) {
        if (strlen(s) != slen || !job_id_valid(s)) {
            rc = value_refused("id", s, slen,
                               " is not 1-128 characters of [A-Za-z0-9._:-]",
                               err);
            goto out;
        }
        memcpy(out->id, s, slen + 1);
    }

    rc = get_string(root, "type", true, &s, &slen, err);
    if (rc != WK_OK)
        goto out;
    if (str_is(s, slen, "archive")) {
        out->type = JOB_ARCHIVE;
    } else if (str_is(s, slen, "unarchive")) {
        out->type = JOB_UNARCHIVE;
    } else if (str_is(s, slen, "migrate")) {
        out->type = JOB_MIGRATE;
    } else {
        quote_untrusted(s, slen, shown, sizeof(shown));
        rc = wk_err_set(err, WK_E_INVAL, "job field 'type': unknown type '%s'",
                        shown);
        goto out;
    }

    /* migrate: taken from the source's space.json when omitted */
    rc = get_string(root, "spaceId", out->type != JOB_MIGRATE, &s, &slen, err);
    if (rc != WK_OK)
        goto out;
    if (!s) {
        /* out->space_id stays "" */
    } else if (strlen(s) != slen || !job_space_id_valid(s)) {
        rc = value_refused("spaceId", s, slen,
                           " is not 1-128 characters of [A-Za-z0-9._-] (and "
                           "not '.' or '..')",
                           err);
        goto out;
    } else {
        memcpy(out->space_id, s, slen + 1);
    }

    rc = get_choice(root, "priority", priorities, &priority, err);
    if (rc != WK_OK)
        goto out;
    out->urgent = priority == 0;

    rc = get_string(root, "archiveKey", false, &s, &slen, err);
    if (rc != WK_OK)
        goto out;
    if (s) {
        char want[JOB_SPACE_ID_MAX + 16];
        size_t wlen =
            (size_t)snprintf(want, sizeof(want), "archived/%s/", out->space_id);
        if (out->type != JOB_UNARCHIVE) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "job field 'archiveKey' is only for unarchive");
            goto out;
        }
        if (strlen(s) != slen || slen >= sizeof(out->archive_key) ||
            strncmp(s, want, wlen) != 0 || strchr(s + wlen, '/') ||
            slen < wlen + 5 || strcmp(s + slen - 4, ".zip") != 0 ||
            !store_key_valid(s)) {
            char why[JOB_SPACE_ID_MAX + 64];
            snprintf(why, sizeof(why), " is not a ZIP directly under '%s'",
                     want);
            rc = value_refused("archiveKey", s, slen, why, err);
            goto out;
        }
        memcpy(out->archive_key, s, slen + 1);
    }

    rc = parse_migrate(root, out, err);
out:
    json_decref(root);
    return rc;
}

enum wk_code job_run(const struct job *job, const struct job_ctx *ctx,
                     struct wk_buf *result, struct wk_err *err)
{
    switch (job->type) {
    case JOB_ARCHIVE:
        return job_archive_run(job, ctx, result, err);
    case JOB_UNARCHIVE:
        return job_unarchive_run(job, ctx, result, err);
    case JOB_MIGRATE:
        return job_migrate_run(job, ctx, result, err);
    }
    return wk_err_set(err, WK_E_INTERNAL, "job type %d has no runner",
                      (int)job->type);
}

enum wk_code job_result_take(struct wk_buf *result, json_t *o,
                             struct wk_err *err)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    enum wk_code rc;

    json_decref(o);
    if (!s)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    wk_buf_reset(result);
    rc = wk_buf_appends(result, s, err);
    free(s);
    return rc;
}

uint64_t job_part_bytes(uint64_t est_bytes, uint64_t configured)
{
    uint64_t part =
        configured < S3_MIN_PART_BYTES ? S3_MIN_PART_BYTES : configured;
    uint64_t need = (est_bytes + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
    if (need > part)
        part = (need + MIB - 1) / MIB * MIB;
    return part;
}

/* The manifest at key, read back: its bytes into out and its etag. */
static enum wk_code mf_read_back(struct store *st, const char *key,
                                 struct wk_buf *out, char *etag, size_t len,
                                 struct wk_err *err)
{
    char tag[sizeof(((struct store_stat *)0)->etag)];
    enum wk_code rc;

    /* one GET: the body and the ETag of that very version */
    wk_buf_reset(out);
    rc = store_get_all_etag(st, key, out, tag, err);
    if (rc != WK_OK)
        return rc;
    snprintf(etag, len, "%s", tag);
    return WK_OK;
}

static bool same_bytes(const struct wk_buf *a, const char *p, size_t n)
{
    return a->len == n && (n == 0 || memcmp(a->data, p, n) == 0);
}

/* A newer record than ours exists: write it back over what we may have
 * overwritten, until the record stays what we wrote (a few rounds). */
static void mf_write_back(const struct job_ctx *ctx, struct store *st,
                          const char *key, const char *space_id,
                          struct wk_buf *newest)
{
    struct wk_buf again;
    struct wk_err e;
    bool written = false;

    wk_buf_init(&again, newest->max);
    for (int round = 0; round < 5 && newest->len > 0; round++) {
        wk_err_clear(&e);
        if (store_put(st, key, newest->data, newest->len, &e) != WK_OK)
            break;
        written = true;
        wk_err_clear(&e);
        if (ctx->mf_check(ctx->mf_ud, space_id, newest->data, newest->len,
                          &again, &e) == WK_OK ||
            e.code != WK_E_FENCED ||
            same_bytes(&again, newest->data, newest->len) || again.len == 0)
            break;
        wk_buf_reset(newest);
        if (wk_buf_append(newest, again.data, again.len, &e) != WK_OK)
            break;
    }
    WK_LOG(WK_LOG_WARN,
           written ? "manifest.written_back" : "manifest.superseded",
           KV_STR("space_id", space_id), KV_STR("key", key),
           KV_STR("msg", written ? "a newer manifest was confirmed while this "
                                   "run wrote: it is written back, and this "
                                   "run stops"
                                 : "a newer manifest is being written by the "
                                   "run that owns the space: this run "
                                   "stops"));
    wk_buf_release(&again);
}

/* job_mf_put on a store without conditional PUT (see job_int.h). */
static enum wk_code mf_put_fenced(const struct job_ctx *ctx, struct store *st,
                                  const char *key, const char *space_id,
                                  const struct wk_buf *b, char *etag,
                                  size_t etag_len, struct wk_err *err)
{
    struct wk_buf back, newest;
    char got[sizeof(((struct store_stat *)0)->etag)] = "";
    bool has_cur = true;
    enum wk_code rc;

    if (!ctx || !ctx->mf_record || !ctx->mf_check)
        return wk_err_set(err, WK_E_INVAL,
                          "put '%s': this S3 server has no conditional PUT, "
                          "so manifests are written only by a worker, "
                          "fenced through Redis (PROTOCOL.md)",
                          key);
    /* the precondition, as far as a read can tell (the record below is
     * what makes a stale writer lose) */
    wk_buf_init(&back, b->max);
    wk_buf_init(&newest, b->max);
    rc = mf_read_back(st, key, &back, got, sizeof(got), err);
    if (rc == WK_E_NOTFOUND) {
        wk_err_clear(err);
        has_cur = false;
        if (etag[0])
            rc = wk_err_set(err, WK_E_CONFLICT,
                            "put '%s': precondition failed (deleted by "
                            "someone else)",
                            key);
        else
            rc = WK_OK;
    } else if (rc == WK_OK && strcmp(got, etag) != 0) {
        rc = wk_err_set(err, WK_E_CONFLICT,
                        "put '%s': precondition failed (changed by someone "
                        "else)",
                        key);
    }
    if (rc == WK_OK)
        rc = ctx->mf_record(ctx->mf_ud, space_id, has_cur, back.data, back.len,
                            b->data, b->len, &newest, err);
    if (rc == WK_E_CONFLICT && newest.len > 0) {
        /* S3 holds an older manifest than the last confirmed one: a stale
         * writer's, whose write-back never came. Put the newest back; this
         * run read the older one, so it fails (and runs again) */
        struct wk_err e;
        wk_err_clear(&e);
        if (store_put(st, key, newest.data, newest.len, &e) == WK_OK)
            WK_LOG(WK_LOG_WARN, "manifest.repaired",
                   KV_STR("space_id", space_id), KV_STR("key", key),
                   KV_STR("msg", "the manifest in S3 was older than the last "
                                 "confirmed record: the record is written "
                                 "back"));
    }
    if (rc != WK_OK)
        goto out;
    wk_fail_point("manifest.recorded");
    for (int round = 0; round < 3; round++) {
        wk_err_clear(err);
        rc = store_put(st, key, b->data, b->len, err);
        if (rc == WK_OK)
            wk_fail_point("manifest.put");
        if (rc == WK_OK)
            rc = mf_read_back(st, key, &back, got, sizeof(got), err);
        if (rc != WK_OK)
            break;
        rc = ctx->mf_check(ctx->mf_ud, space_id, b->data, b->len, &newest, err);
        if (rc == WK_E_FENCED) {
            mf_write_back(ctx, st, key, space_id, &newest);
            break;
        }
        if (rc != WK_OK)
            break;
        if (same_bytes(&back, b->data, b->len))
            break;
        /* still ours in Redis, but S3 holds another body: a stale writer's
         * PUT landed in between; ours again */
        WK_LOG(WK_LOG_WARN, "manifest.overwritten",
               KV_STR("space_id", space_id), KV_STR("key", key),
               KV_INT("round", round + 1));
        rc = wk_err_set(err, WK_E_CONFLICT,
                        "put '%s': overwritten by a stale writer three times",
                        key);
    }
    if (rc == WK_OK)
        snprintf(etag, etag_len, "%s", got);
out:
    wk_buf_release(&back);
    wk_buf_release(&newest);
    return rc;
}

enum wk_code job_mf_put(const struct job_ctx *ctx, struct store *st,
                        const char *key, const struct mf *m, char *etag,
                        size_t etag_len, struct wk_err *err)
{
    struct wk_buf b;
    char next[sizeof(((struct store_stat *)0)->etag)] = "";
    unsigned fl = 0;
    enum wk_code rc;

    wk_buf_init(&b, 1u << 20);
    rc = mf_to_json(m, &b, err);
    if (rc == WK_OK)
        rc = store_features(st, &fl, err);
    if (rc == WK_OK && !(fl & STORE_F_COND_PUT)) {
        rc = mf_put_fenced(ctx, st, key, m->space_id, &b, etag, etag_len, err);
        wk_buf_release(&b);
        return rc;
    }
    if (rc == WK_OK)
        rc =
            store_put_if(st, key, b.data, b.len, etag, next, sizeof(next), err);
    if (rc == WK_OK)
        snprintf(etag, etag_len, "%s", next);
    wk_buf_release(&b);
    return rc;
}

bool job_cancelled(const struct job_ctx *ctx)
{
    return ctx->cancel && *ctx->cancel;
}

enum wk_code job_fence(const struct job_ctx *ctx, const char *step,
                       struct wk_err *err)
{
    if (!ctx->fence)
        return WK_OK;
    return ctx->fence(ctx->fence_ud, step, err);
}

void job_prog_done(struct prog *p)
{
    p->st.phase = "done";
    p->st.bytes_done = p->st.bytes_total;
    p->st.files_done = p->st.files_total;
    p->st.progress = 100; /* also when there was nothing to count */
    prog_update(p, true);
}

enum wk_code job_delete_keys(const struct job_ctx *ctx, const char *step,
                             const char *const *keys, const char *const *etags,
                             size_t n, size_t *ndeleted, bool *kept,
                             struct wk_err *err)
{
    size_t batch = step ? JOB_DELETE_BATCH : n;
    char point[64] = "";
    enum wk_code rc = WK_OK;

    if (step)
        snprintf(point, sizeof(point), "%s_batch", step);

    *ndeleted = 0;
    for (size_t off = 0; off < n && rc == WK_OK; off += batch) {
        size_t cnt = n - off < batch ? n - off : batch;
        size_t nd = 0;
        if (step) {
            rc = job_fence(ctx, step, err);
            if (rc != WK_OK)
                break;
        }
        if (etags)
            rc = store_delete_if(ctx->store, keys + off, etags + off, cnt, &nd,
                                 kept + off, err);
        else
            rc = store_delete_many(ctx->store, keys + off, cnt, &nd, err);
        *ndeleted += nd;
        if (rc == WK_OK && step)
            wk_fail_point(point);
    }
    return rc;
}

enum wk_code job_mf_get(struct store *st, const char *key, struct mf *m,
                        bool *fetched, char *etag, struct wk_err *err)
{
    char tag[sizeof(((struct store_stat *)0)->etag)];
    struct wk_buf b;
    enum wk_code rc;

    *fetched = false;
    if (etag)
        etag[0] = '\0';
    wk_buf_init(&b, 1u << 20);
    rc = store_get_all_etag(st, key, &b, tag, err);
    if (rc == WK_OK && etag)
        memcpy(etag, tag, sizeof(tag));
    if (rc == WK_OK) {
        *fetched = true;
        rc = mf_parse(wk_buf_cstr(&b), b.len, m, err);
    }
    wk_buf_release(&b);
    return rc;
}

enum wk_code job_mf_read(struct store *st, const char *key, struct mf *m,
                         bool *has, char *etag, struct wk_err *err)
{
    struct wk_err gerr;
    bool fetched = false;
    enum wk_code rc;

    *has = false;
    wk_err_clear(&gerr);
    rc = job_mf_get(st, key, m, &fetched, etag, &gerr);
    if (!fetched)
        return rc == WK_E_NOTFOUND ? WK_OK : wk_err_copy(err, &gerr);
    if (rc != WK_OK) {
        wk_err_copy(err, &gerr);
        wk_err_prefix(err, "existing manifest '%s'", key);
        err->code = WK_E_CORRUPT;
        return WK_E_CORRUPT;
    }
    *has = true;
    return WK_OK;
}
