/*
 * mf: the manifest JSON (jansson). Writing and parsing share the field
 * checks, so we never write a manifest we would refuse to read. Parse
 * failures are WK_E_CORRUPT (stored data failed verification); a bad struct
 * handed to mf_to_json() is WK_E_INVAL. Messages name the field:
 * "manifest field 'checksum': expected 64 lowercase hex characters".
 */
#include "jobs/manifest.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_parse.h"

#define MF_SPACE_ID_MAX 128

void mf_key(const char *space_id, char *buf, size_t len)
{
    int n = snprintf(buf, len, "metadata/%s.json", space_id);

    /* callers size buf for the longest valid spaceId */
    WK_ASSERT(n > 0 && (size_t)n < len);
}

const char *mf_state_name(enum mf_state s)
{
    switch (s) {
    case MF_ARCHIVED:
        return "archived";
    case MF_ARCHIVING:
        return "archiving";
    case MF_RESTORING:
        return "restoring";
    case MF_ACTIVE:
    default:
        return "active";
    }
}

static enum wk_code bad_field(struct wk_err *err, enum wk_code code,
                              const char *field, const char *what)
{
    return wk_err_set(err, code, "manifest field '%s': %s", field, what);
}

#define STATE_EXPECTED \
    "expected \"active\", \"archiving\", \"archived\" or \"restoring\""

static bool space_id_ok(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > MF_SPACE_ID_MAX || strcmp(s, ".") == 0 ||
        strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool checksum_ok(const char *s)
{
    size_t len = strlen(s);

    if (len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool compression_ok(const char *s)
{
    return strcmp(s, "deflate") == 0 || strcmp(s, "store") == 0;
}

/* "archived/<spaceId>/...zip", no empty, "." or ".." component. */
static const char *archive_key_problem(const char *key, const char *space_id,
                                       size_t max)
{
    size_t len = strlen(key), idlen = strlen(space_id);
    const char *seg = key;

    if (len >= max)
        return "too long";
    if (strncmp(key, "archived/", 9) != 0 ||
        strncmp(key + 9, space_id, idlen) != 0 || key[9 + idlen] != '/')
        return "expected a key under 'archived/<spaceId>/'";
    if (len < 4 || strcmp(key + len - 4, ".zip") != 0)
        return "expected a key ending in '.zip'";
    for (const char *p = key;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') ||
                (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return "empty, '.' or '..' path component";
            if (*p == '\0')
                break;
            seg = p + 1;
        } else if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') {
            return "control character or backslash";
        }
    }
    return NULL;
}

/* A sealed archive's record: what seal_dk_open() needs, well-formed. */
static enum wk_code check_enc(const struct seal_info *e, const char *field,
                              enum wk_code code, struct wk_err *err)
{
    if (!e->on)
        return WK_OK;
    if (!seal_key_id_valid(e->key_id))
        return bad_field(err, code, field,
                         "keyId: expected 16 lowercase hex characters");
    if (!seal_wrapped_valid(e->wrapped))
        return bad_field(err, code, field,
                         "wrappedKey: expected 80 base64 characters");
    if (!seal_chunk_valid(e->chunk_bytes))
        return bad_field(err, code, field,
                         "chunkSize: expected 4096 to 16777216");
    return WK_OK;
}

/* Checks shared by writing and parsing (everything but the times). */
static enum wk_code check_fields(const struct mf *m, enum wk_code code,
                                 struct wk_err *err)
{
    const char *problem;

    if (strcmp(m->version, MF_VERSION) != 0)
        return bad_field(err, code, "version", "expected \"" MF_VERSION "\"");
    if (!space_id_ok(m->space_id))
        return bad_field(err, code, "spaceId",
                         "expected 1-128 characters of [A-Za-z0-9._-], not "
                         "'.' or '..'");
    if (m->state != MF_ACTIVE && m->state != MF_ARCHIVED &&
        m->state != MF_ARCHIVING && m->state != MF_RESTORING)
        return bad_field(err, code, "state", STATE_EXPECTED);
    if (!compression_ok(m->compression))
        return bad_field(err, code, "compression",
                         "expected \"deflate\" or \"store\"");
    if (!m->archive_key[0] && !mf_in_archive(m)) {
        /* never archived: nothing may describe an archive */
        if (m->checksum[0] || m->size || m->uncompressed_size ||
            m->file_count || m->n_history || m->enc.on)
            return bad_field(err, code, "archiveKey",
                             "empty, but other fields describe an archive");
        return WK_OK;
    }
    problem = archive_key_problem(m->archive_key, m->space_id,
                                  sizeof(m->archive_key));
    if (problem)
        return bad_field(err, code, "archiveKey", problem);
    if (!checksum_ok(m->checksum))
        return bad_field(err, code, "checksum",
                         "expected 64 lowercase hex characters");
    if (check_enc(&m->enc, "encryption", code, err) != WK_OK)
        return code;
    if (m->n_history > MF_HISTORY_MAX)
        return bad_field(err, code, "history", "too many entries");
    for (size_t i = 0; i < m->n_history; i++) {
        const struct mf_archive *h = &m->history[i];
        problem = archive_key_problem(h->key, m->space_id, sizeof(h->key));
        if (problem)
            return bad_field(err, code, "history[].archiveKey", problem);
        if (!checksum_ok(h->checksum))
            return bad_field(err, code, "history[].checksum",
                             "expected 64 lowercase hex characters");
        if (check_enc(&h->enc, "history[].encryption", code, err) != WK_OK)
            return code;
    }
    return WK_OK;
}

static enum wk_code set_new(json_t *o, const char *k, json_t *v,
                            struct wk_err *err)
{
    /* json_object_set_new() takes v even on failure */
    if (!v || json_object_set_new(o, k, v) != 0)
        return wk_err_set(err, WK_E_NOMEM, "manifest: out of memory");
    return WK_OK;
}

static enum wk_code set_time(json_t *o, const char *k, time_t t,
                             struct wk_err *err)
{
    char buf[32];

    wk_fmt_rfc3339(t, buf, sizeof(buf));
    return set_new(o, k, json_string(buf), err);
}

static enum wk_code set_u64(json_t *o, const char *k, uint64_t v,
                            struct wk_err *err)
{
    if (v > (uint64_t)INT64_MAX)
        return bad_field(err, WK_E_INVAL, k, "too large");
    return set_new(o, k, json_integer((json_int_t)v), err);
}

/* "encryption": {scheme, algorithm, keyId, wrappedKey, chunkSize}, only
 * for a sealed archive. */
static enum wk_code set_enc(json_t *o, const struct seal_info *e,
                            struct wk_err *err)
{
    json_t *v;
    enum wk_code rc;

    if (!e->on)
        return WK_OK;
    v = json_object();
    rc = set_new(o, "encryption", v, err);
    if (rc == WK_OK)
        rc = set_new(v, "scheme", json_string(SEAL_SCHEME), err);
    if (rc == WK_OK)
        rc = set_new(v, "algorithm", json_string(SEAL_ALGORITHM), err);
    if (rc == WK_OK)
        rc = set_new(v, "keyId", json_string(e->key_id), err);
    if (rc == WK_OK)
        rc = set_new(v, "wrappedKey", json_string(e->wrapped), err);
    if (rc == WK_OK)
        rc = set_u64(v, "chunkSize", e->chunk_bytes, err);
    return rc;
}

enum wk_code mf_to_json(const struct mf *m, struct wk_buf *out,
                        struct wk_err *err)
{
    json_t *o = NULL;
    char *text = NULL;
    enum wk_code rc = check_fields(m, WK_E_INVAL, err);

    if (rc != WK_OK)
        goto out;
    o = json_object();
    if (!o) {
        rc = wk_err_set(err, WK_E_NOMEM, "manifest: out of memory");
        goto out;
    }
    /* the documented key order (jansson keeps insertion order) */
    rc = set_new(o, "version", json_string(m->version), err);
    if (rc == WK_OK)
        rc = set_new(o, "spaceId", json_string(m->space_id), err);
    if (rc == WK_OK)
        rc = set_new(o, "state", json_string(mf_state_name(m->state)), err);
    if (rc == WK_OK)
        rc = set_time(o, "createdAt", m->created_at, err);
    if (rc == WK_OK && m->archive_key[0])
        rc = set_time(o, "archivedAt", m->archived_at, err);
    if (rc == WK_OK && m->restored_at != 0)
        rc = set_time(o, "restoredAt", m->restored_at, err);
    if (rc == WK_OK)
        rc = set_new(o, "compression", json_string(m->compression), err);
    if (rc == WK_OK)
        rc = set_new(o, "archiveKey", json_string(m->archive_key), err);
    if (rc == WK_OK)
        rc = set_new(o, "checksum", json_string(m->checksum), err);
    if (rc == WK_OK)
        rc = set_u64(o, "size", m->size, err);
    if (rc == WK_OK)
        rc = set_u64(o, "uncompressedSize", m->uncompressed_size, err);
    if (rc == WK_OK)
        rc = set_u64(o, "fileCount", m->file_count, err);
    if (rc == WK_OK)
        rc = set_enc(o, &m->enc, err);
    if (rc == WK_OK && m->generation > 0)
        rc = set_u64(o, "generation", m->generation, err);
    if (rc == WK_OK && m->state == MF_RESTORING && m->restoring_archive[0])
        rc = set_new(o, "restoringArchive", json_string(m->restoring_archive),
                     err);
    if (rc == WK_OK && m->state == MF_RESTORING && m->ready_at != 0)
        rc = set_time(o, "readyAt", m->ready_at, err);
    if (rc == WK_OK && m->n_history > 0) {
        json_t *arr = json_array();
        rc = set_new(o, "history", arr, err);
        for (size_t i = 0; rc == WK_OK && i < m->n_history; i++) {
            const struct mf_archive *h = &m->history[i];
            json_t *e = json_object();
            if (!e || json_array_append_new(arr, e) != 0) {
                rc = wk_err_set(err, WK_E_NOMEM, "manifest: out of memory");
                break;
            }
            rc = set_new(e, "archiveKey", json_string(h->key), err);
            if (rc == WK_OK)
                rc = set_new(e, "checksum", json_string(h->checksum), err);
            if (rc == WK_OK)
                rc = set_u64(e, "size", h->size, err);
            if (rc == WK_OK)
                rc = set_u64(e, "uncompressedSize", h->uncompressed_size, err);
            if (rc == WK_OK)
                rc = set_u64(e, "fileCount", h->file_count, err);
            if (rc == WK_OK)
                rc = set_time(e, "archivedAt", h->archived_at, err);
            if (rc == WK_OK)
                rc = set_enc(e, &h->enc, err);
        }
    }
    if (rc != WK_OK)
        goto out;
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) {
        rc = wk_err_set(err, WK_E_NOMEM, "manifest: out of memory");
        goto out;
    }
    rc = wk_buf_appends(out, text, err);
    if (rc == WK_OK)
        rc = wk_buf_append(out, "\n", 1, err);
out:
    free(text);
    json_decref(o);
    return rc;
}

void mf_current(const struct mf *m, struct mf_archive *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->key, sizeof(out->key), "%s", m->archive_key);
    memcpy(out->checksum, m->checksum, sizeof(out->checksum));
    out->size = m->size;
    out->uncompressed_size = m->uncompressed_size;
    out->file_count = m->file_count;
    out->archived_at = m->archived_at;
    out->enc = m->enc;
}

enum wk_code mf_open_key(const struct mf_archive *a, const char *space_id,
                         const struct seal_keyring *kr, struct seal_dk *dk,
                         struct wk_err *err)
{
    if (!kr)
        return wk_err_set(err, WK_E_INVAL,
                          "archive '%s' is encrypted (key %s) and no "
                          "SILA_ENCRYPTION_KEY_FILE is configured",
                          a->key, a->enc.key_id);
    return seal_dk_open(kr, space_id, &a->enc, dk, err);
}

bool mf_find_archive(const struct mf *m, const char *key,
                     struct mf_archive *out)
{
    if (!key[0] || strcmp(key, m->archive_key) == 0) {
        mf_current(m, out);
        return m->archive_key[0] != '\0';
    }
    for (size_t i = 0; i < m->n_history; i++)
        if (strcmp(m->history[i].key, key) == 0) {
            *out = m->history[i];
            return true;
        }
    return false;
}

/* ---- parsing ---- */

static enum wk_code get_str(json_t *root, const char *k, char *dst, size_t cap,
                            const char *expect, struct wk_err *err)
{
    json_t *v = json_object_get(root, k);
    size_t len;

    if (!v)
        return bad_field(err, WK_E_CORRUPT, k, "missing");
    if (!json_is_string(v))
        return bad_field(err, WK_E_CORRUPT, k, expect);
    len = json_string_length(v);
    /* too long for the struct, or an embedded NUL: never valid */
    if (len >= cap || strlen(json_string_value(v)) != len)
        return bad_field(err, WK_E_CORRUPT, k, expect);
    memcpy(dst, json_string_value(v), len + 1);
    return WK_OK;
}

static enum wk_code get_time(json_t *root, const char *k, bool optional,
                             time_t *out, struct wk_err *err)
{
    static const char expect[] =
        "expected an RFC 3339 UTC time (\"2024-01-15T10:20:30Z\")";
    json_t *v = json_object_get(root, k);
    struct wk_err perr;

    if (!v || (optional && json_is_null(v))) {
        if (optional) {
            *out = 0;
            return WK_OK;
        }
        return bad_field(err, WK_E_CORRUPT, k, "missing");
    }
    wk_err_clear(&perr);
    if (!json_is_string(v) ||
        wk_parse_rfc3339(json_string_value(v), out, &perr) != WK_OK)
        return bad_field(err, WK_E_CORRUPT, k, expect);
    return WK_OK;
}

static enum wk_code get_u64(json_t *root, const char *k, uint64_t *out,
                            struct wk_err *err)
{
    json_t *v = json_object_get(root, k);

    if (!v)
        return bad_field(err, WK_E_CORRUPT, k, "missing");
    /* json_is_integer() is false for 1.0 and "1": both refused */
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bad_field(err, WK_E_CORRUPT, k,
                         "expected a non-negative integer");
    *out = (uint64_t)json_integer_value(v);
    return WK_OK;
}

/* Optional "encryption" of root (a manifest or a history entry). A scheme
 * this version does not know is refused: its archive cannot be read, and
 * reading it as a plain ZIP would be wrong. */
static enum wk_code get_enc(json_t *root, const char *field,
                            struct seal_info *e, struct wk_err *err)
{
    json_t *v = json_object_get(root, "encryption");
    char scheme[32], alg[32];
    uint64_t chunk = 0;
    enum wk_code rc;

    memset(e, 0, sizeof(*e));
    if (!v || json_is_null(v))
        return WK_OK;
    if (!json_is_object(v))
        return bad_field(err, WK_E_CORRUPT, field, "expected an object");
    rc = get_str(v, "scheme", scheme, sizeof(scheme),
                 "expected \"" SEAL_SCHEME "\"", err);
    if (rc == WK_OK && strcmp(scheme, SEAL_SCHEME) != 0)
        rc = bad_field(err, WK_E_CORRUPT, field,
                       "scheme: expected \"" SEAL_SCHEME "\"");
    if (rc == WK_OK)
        rc = get_str(v, "algorithm", alg, sizeof(alg),
                     "expected \"" SEAL_ALGORITHM "\"", err);
    if (rc == WK_OK && strcmp(alg, SEAL_ALGORITHM) != 0)
        rc = bad_field(err, WK_E_CORRUPT, field,
                       "algorithm: expected \"" SEAL_ALGORITHM "\"");
    if (rc == WK_OK)
        rc = get_str(v, "keyId", e->key_id, sizeof(e->key_id),
                     "expected 16 lowercase hex characters", err);
    if (rc == WK_OK)
        rc = get_str(v, "wrappedKey", e->wrapped, sizeof(e->wrapped),
                     "expected 80 base64 characters", err);
    if (rc == WK_OK)
        rc = get_u64(v, "chunkSize", &chunk, err);
    if (rc == WK_OK && !seal_chunk_valid(chunk))
        rc = bad_field(err, WK_E_CORRUPT, field,
                       "chunkSize: expected 4096 to 16777216");
    e->chunk_bytes = (uint32_t)(rc == WK_OK ? chunk : 0);
    e->on = rc == WK_OK;
    return rc;
}

/* Optional "history": an array of {archiveKey, checksum, size,
 * uncompressedSize, fileCount, archivedAt}; the strings are checked by
 * check_fields(). */
static enum wk_code get_history(json_t *root, struct mf *m, struct wk_err *err)
{
    json_t *arr = json_object_get(root, "history");
    size_t i;
    json_t *e;
    enum wk_code rc = WK_OK;

    m->n_history = 0;
    if (!arr || json_is_null(arr))
        return WK_OK;
    if (!json_is_array(arr))
        return bad_field(err, WK_E_CORRUPT, "history", "expected an array");
    if (json_array_size(arr) > MF_HISTORY_MAX)
        return bad_field(err, WK_E_CORRUPT, "history", "too many entries");
    json_array_foreach(arr, i, e)
    {
        struct mf_archive *h = &m->history[i];
        if (!json_is_object(e))
            return bad_field(err, WK_E_CORRUPT, "history",
                             "expected an array of objects");
        rc = get_str(e, "archiveKey", h->key, sizeof(h->key),
                     "expected a string of at most 255 bytes", err);
        if (rc == WK_OK)
            rc = get_str(e, "checksum", h->checksum, sizeof(h->checksum),
                         "expected 64 lowercase hex characters", err);
        if (rc == WK_OK)
            rc = get_u64(e, "size", &h->size, err);
        if (rc == WK_OK)
            rc = get_u64(e, "uncompressedSize", &h->uncompressed_size, err);
        if (rc == WK_OK)
            rc = get_u64(e, "fileCount", &h->file_count, err);
        if (rc == WK_OK)
            rc = get_time(e, "archivedAt", false, &h->archived_at, err);
        if (rc == WK_OK)
            rc = get_enc(e, "history[].encryption", &h->enc, err);
        if (rc != WK_OK)
            return rc;
        m->n_history = i + 1;
    }
    return WK_OK;
}

enum wk_code mf_parse(const char *json, size_t len, struct mf *out,
                      struct wk_err *err)
{
    json_t *root = NULL;
    json_error_t jerr;
    struct mf m;
    char state[16];
    enum wk_code rc;

    memset(&m, 0, sizeof(m));
    root = json_loadb(json ? json : "", json ? len : 0, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (!root) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "manifest: invalid JSON at line %d column %d: %s",
                        jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = wk_err_set(err, WK_E_CORRUPT, "manifest: expected a JSON object");
        goto out;
    }
    rc = get_str(root, "version", m.version, sizeof(m.version),
                 "expected \"" MF_VERSION "\"", err);
    if (rc == WK_OK && strcmp(m.version, MF_VERSION) != 0)
        rc = bad_field(err, WK_E_CORRUPT, "version",
                       "expected \"" MF_VERSION "\"");
    if (rc == WK_OK)
        rc = get_str(root, "spaceId", m.space_id, sizeof(m.space_id),
                     "expected 1-128 characters of [A-Za-z0-9._-], not '.' "
                     "or '..'",
                     err);
    if (rc == WK_OK)
        rc = get_str(root, "state", state, sizeof(state), STATE_EXPECTED, err);
    if (rc == WK_OK) {
        if (strcmp(state, "active") == 0)
            m.state = MF_ACTIVE;
        else if (strcmp(state, "archived") == 0)
            m.state = MF_ARCHIVED;
        else if (strcmp(state, "archiving") == 0)
            m.state = MF_ARCHIVING;
        else if (strcmp(state, "restoring") == 0)
            m.state = MF_RESTORING;
        else
            rc = bad_field(err, WK_E_CORRUPT, "state", STATE_EXPECTED);
    }
    if (rc == WK_OK)
        rc = get_time(root, "createdAt", false, &m.created_at, err);
    if (rc == WK_OK)
        rc = get_time(root, "archivedAt", true, &m.archived_at, err);
    if (rc == WK_OK)
        rc = get_time(root, "restoredAt", true, &m.restored_at, err);
    if (rc == WK_OK)
        rc = get_str(root, "compression", m.compression, sizeof(m.compression),
                     "expected \"deflate\" or \"store\"", err);
    if (rc == WK_OK)
        rc = get_str(root, "archiveKey", m.archive_key, sizeof(m.archive_key),
                     "expected a string of at most 255 bytes", err);
    if (rc == WK_OK)
        rc = get_str(root, "checksum", m.checksum, sizeof(m.checksum),
                     "expected 64 lowercase hex characters", err);
    if (rc == WK_OK)
        rc = get_u64(root, "size", &m.size, err);
    if (rc == WK_OK)
        rc = get_u64(root, "uncompressedSize", &m.uncompressed_size, err);
    if (rc == WK_OK)
        rc = get_u64(root, "fileCount", &m.file_count, err);
    if (rc == WK_OK)
        rc = get_enc(root, "encryption", &m.enc, err);
    if (rc == WK_OK && json_object_get(root, "generation"))
        rc = get_u64(root, "generation", &m.generation, err);
    if (rc == WK_OK && json_object_get(root, "restoringArchive"))
        rc = get_str(root, "restoringArchive", m.restoring_archive,
                     sizeof(m.restoring_archive),
                     "expected a string of at most 255 bytes", err);
    if (rc == WK_OK)
        rc = get_time(root, "readyAt", true, &m.ready_at, err);
    if (rc == WK_OK && m.state != MF_RESTORING) {
        m.restoring_archive[0] = '\0'; /* meaningful while restoring only */
        m.ready_at = 0;
    }
    if (rc == WK_OK)
        rc = get_history(root, &m, err);
    if (rc == WK_OK)
        rc = check_fields(&m, WK_E_CORRUPT, err);
    if (rc == WK_OK && m.archive_key[0] && m.archived_at == 0)
        rc = bad_field(err, WK_E_CORRUPT, "archivedAt", "missing");
    if (rc == WK_OK)
        *out = m;
out:
    json_decref(root);
    return rc;
}
