#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/manifest.h"
#include "tests/unit/suites.h"

#define SUM "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void valid_mf(struct mf *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->version, sizeof(m->version), "%s", MF_VERSION);
    snprintf(m->space_id, sizeof(m->space_id), "space-1_a.B");
    m->state = MF_ARCHIVED;
    m->created_at = 1255369830;  /* 2009-10-12T17:50:30Z */
    m->archived_at = 1700000000; /* 2023-11-14T22:13:20Z */
    snprintf(m->compression, sizeof(m->compression), "deflate");
    snprintf(m->archive_key, sizeof(m->archive_key),
             "archived/space-1_a.B/20231114T221320Z.zip");
    memcpy(m->checksum, SUM, 65);
    m->size = 123456789012ULL;
    m->uncompressed_size = 9007199254740993ULL; /* 2^53 + 1: exact */
    m->file_count = 42;
}

static const char valid_json[] =
    "{\n"
    "  \"version\": \"1.0\",\n"
    "  \"spaceId\": \"space-1_a.B\",\n"
    "  \"state\": \"archived\",\n"
    "  \"createdAt\": \"2009-10-12T17:50:30Z\",\n"
    "  \"archivedAt\": \"2023-11-14T22:13:20Z\",\n"
    "  \"compression\": \"deflate\",\n"
    "  \"archiveKey\": \"archived/space-1_a.B/20231114T221320Z.zip\",\n"
    "  \"checksum\": \"" SUM "\",\n"
    "  \"size\": 123456789012,\n"
    "  \"uncompressedSize\": 9007199254740993,\n"
    "  \"fileCount\": 42\n"
    "}\n";

START_TEST(test_manifest_key)
{
    char buf[160];

    mf_key("abc", buf, sizeof(buf));
    ck_assert_str_eq(buf, "metadata/abc.json");
    ck_assert_str_eq(mf_state_name(MF_ACTIVE), "active");
    ck_assert_str_eq(mf_state_name(MF_ARCHIVED), "archived");
    ck_assert_str_eq(mf_state_name(MF_ARCHIVING), "archiving");
    ck_assert_str_eq(mf_state_name(MF_RESTORING), "restoring");
}
END_TEST

/* The intermediate states round-trip; only active and archiving may name
 * no archive (a space never archived), and then nothing else may describe
 * one. */
START_TEST(test_manifest_states_and_no_archive)
{
    static const enum mf_state states[] = { MF_ACTIVE, MF_ARCHIVING,
                                            MF_ARCHIVED, MF_RESTORING };
    struct mf m, back;
    struct wk_buf b;
    struct wk_err err;

    wk_buf_init(&b, 1u << 16);
    for (size_t i = 0; i < 4; i++) {
        valid_mf(&m);
        m.state = states[i];
        m.generation = 7;
        wk_buf_reset(&b);
        wk_err_clear(&err);
        ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
        ck_assert_int_eq(mf_parse(b.data, b.len, &back, &err), WK_OK);
        ck_assert_int_eq(back.state, states[i]);
        ck_assert_uint_eq(back.generation, 7);
    }
    for (size_t i = 0; i < 4; i++) {
        valid_mf(&m);
        m.state = states[i];
        m.archive_key[0] = m.checksum[0] = '\0';
        m.archived_at = 0;
        m.size = m.uncompressed_size = m.file_count = 0;
        wk_buf_reset(&b);
        wk_err_clear(&err);
        if (!mf_in_archive(&m)) {
            ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
            ck_assert_ptr_null(strstr(wk_buf_cstr(&b), "archivedAt"));
            ck_assert_int_eq(mf_parse(b.data, b.len, &back, &err), WK_OK);
            ck_assert_str_eq(back.archive_key, "");
            /* ... and then nothing may describe an archive */
            m.file_count = 3;
            wk_buf_reset(&b);
            ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_E_INVAL);
            ck_assert_str_eq(err.msg,
                             "manifest field 'archiveKey': empty, but other "
                             "fields describe an archive");
        } else {
            ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_E_INVAL);
            ck_assert_ptr_nonnull(strstr(err.msg, "'archiveKey'"));
        }
    }
    wk_buf_release(&b);
    /* an archive needs its time */
    {
        char *s = strdup(valid_json);
        char *p = strstr(s, "  \"archivedAt\"");
        char *e = strchr(p, '\n');
        memmove(p, e + 1, strlen(e + 1) + 1);
        wk_err_clear(&err);
        ck_assert_int_eq(mf_parse(s, strlen(s), &back, &err), WK_E_CORRUPT);
        ck_assert_str_eq(err.msg, "manifest field 'archivedAt': missing");
        free(s);
    }
}
END_TEST

START_TEST(test_manifest_to_json_key_order)
{
    struct mf m;
    struct wk_buf b;
    struct wk_err err;

    valid_mf(&m);
    wk_err_clear(&err);
    wk_buf_init(&b, 1 << 16);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&b), valid_json);
    wk_buf_release(&b);
}
END_TEST

START_TEST(test_manifest_roundtrip)
{
    struct mf m, back;
    struct wk_buf b;
    struct wk_err err;

    valid_mf(&m);
    m.state = MF_ACTIVE;
    m.restored_at = 1800000000;
    wk_err_clear(&err);
    wk_buf_init(&b, 1 << 16);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
    ck_assert_ptr_nonnull(
        strstr(wk_buf_cstr(&b), "\"archivedAt\": \"2023-11-14T22:13:20Z\",\n"
                                "  \"restoredAt\": \"2027-01-15T08:00:00Z\","));
    memset(&back, 0x55, sizeof(back));
    ck_assert_int_eq(mf_parse(b.data, b.len, &back, &err), WK_OK);
    ck_assert_str_eq(back.version, m.version);
    ck_assert_str_eq(back.space_id, m.space_id);
    ck_assert_int_eq(back.state, MF_ACTIVE);
    ck_assert_int_eq(back.created_at, m.created_at);
    ck_assert_int_eq(back.archived_at, m.archived_at);
    ck_assert_int_eq(back.restored_at, m.restored_at);
    ck_assert_str_eq(back.compression, m.compression);
    ck_assert_str_eq(back.archive_key, m.archive_key);
    ck_assert_str_eq(back.checksum, m.checksum);
    ck_assert(back.size == m.size);
    ck_assert(back.uncompressed_size == m.uncompressed_size);
    ck_assert(back.file_count == m.file_count);
    wk_buf_release(&b);
}
END_TEST

/* "encryption" of a sealed archive: the documented shape, round-tripped
 * for the current archive and a history entry, absent when plain. */
START_TEST(test_manifest_encryption_roundtrip)
{
    static const char wrapped[] =
        "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83v"
        "EjRWeJCrze8S";
    struct mf m, back;
    struct mf_archive a;
    struct wk_buf b;
    struct wk_err err;

    valid_mf(&m);
    m.enc.on = true;
    snprintf(m.enc.key_id, sizeof(m.enc.key_id), "7763a8e2a8c815ea");
    snprintf(m.enc.wrapped, sizeof(m.enc.wrapped), "%s", wrapped);
    m.enc.chunk_bytes = 65536;
    m.n_history = 1;
    m.history[0].enc = m.enc;
    m.history[0].enc.key_id[0] = '0';
    snprintf(m.history[0].key, sizeof(m.history[0].key),
             "archived/space-1_a.B/older.zip");
    memcpy(m.history[0].checksum, SUM, 65);
    m.history[0].archived_at = 1600000000;
    wk_err_clear(&err);
    wk_buf_init(&b, 1 << 16);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
    ck_assert_ptr_nonnull(strstr(wk_buf_cstr(&b),
                                 "  \"encryption\": {\n"
                                 "    \"scheme\": \"sila-seal-v1\",\n"
                                 "    \"algorithm\": \"AES-256-GCM\",\n"
                                 "    \"keyId\": \"7763a8e2a8c815ea\",\n"
                                 "    \"wrappedKey\": \""));
    ck_assert_ptr_nonnull(strstr(wk_buf_cstr(&b), "\"chunkSize\": 65536"));
    ck_assert_int_eq(mf_parse(b.data, b.len, &back, &err), WK_OK);
    ck_assert(back.enc.on);
    ck_assert_str_eq(back.enc.key_id, "7763a8e2a8c815ea");
    ck_assert_str_eq(back.enc.wrapped, wrapped);
    ck_assert_uint_eq(back.enc.chunk_bytes, 65536);
    ck_assert(back.history[0].enc.on);
    ck_assert_str_eq(back.history[0].enc.key_id, "0763a8e2a8c815ea");
    /* lookups carry it */
    ck_assert(mf_find_archive(&back, "", &a) && a.enc.on);
    ck_assert(mf_find_archive(&back, "archived/space-1_a.B/older.zip", &a));
    ck_assert_str_eq(a.enc.key_id, "0763a8e2a8c815ea");
    ck_assert(!mf_find_archive(&back, "archived/space-1_a.B/none.zip", &a));
    /* a plain archive says nothing about encryption */
    valid_mf(&m);
    wk_buf_reset(&b);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
    ck_assert_ptr_null(strstr(wk_buf_cstr(&b), "encryption"));
    ck_assert_int_eq(mf_parse(b.data, b.len, &back, &err), WK_OK);
    ck_assert(!back.enc.on);
    wk_buf_release(&b);
}
END_TEST

START_TEST(test_manifest_parse_without_restored_at)
{
    struct mf m;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(valid_json, strlen(valid_json), &m, &err), WK_OK);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_int_eq(m.restored_at, 0);
    ck_assert(m.uncompressed_size == 9007199254740993ULL);
}
END_TEST

/* valid_json with one field replaced (NULL value: removed). */
static char *mutate(const char *field, json_t *value)
{
    json_error_t jerr;
    json_t *o = json_loads(valid_json, 0, &jerr);
    char *s;

    ck_assert_ptr_nonnull(o);
    if (value)
        json_object_set_new(o, field, value);
    else
        json_object_del(o, field);
    s = json_dumps(o, JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static void expect_bad(const char *field, json_t *value, const char *msg)
{
    struct mf m;
    struct wk_err err;
    char *s = mutate(field, value);

    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(s, strlen(s), &m, &err), WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, msg);
    free(s);
}

START_TEST(test_manifest_invalid_fields_rejected)
{
    static const char id_msg[] =
        "manifest field 'spaceId': expected 1-128 characters of "
        "[A-Za-z0-9._-], not '.' or '..'";
    static const char time_msg[] =
        "expected an RFC 3339 UTC time (\"2024-01-15T10:20:30Z\")";
    static const char num_msg[] = "expected a non-negative integer";
    char longid[140];
    char msg[256];

    expect_bad("version", json_string("2.0"),
               "manifest field 'version': expected \"1.0\"");
    expect_bad("version", json_real(1.0),
               "manifest field 'version': expected \"1.0\"");
    expect_bad("version", NULL, "manifest field 'version': missing");
    expect_bad("spaceId", json_string(""), id_msg);
    expect_bad("spaceId", json_string("."), id_msg);
    expect_bad("spaceId", json_string(".."), id_msg);
    expect_bad("spaceId", json_string("a/b"), id_msg);
    expect_bad("spaceId", json_string("sp ace"), id_msg);
    memset(longid, 'a', 129);
    longid[129] = '\0';
    expect_bad("spaceId", json_string(longid), id_msg);
    expect_bad("state", json_string("deleted"),
               "manifest field 'state': expected \"active\", \"archiving\", "
               "\"archived\" or \"restoring\"");
    expect_bad("state", json_integer(1),
               "manifest field 'state': expected \"active\", \"archiving\", "
               "\"archived\" or \"restoring\"");
    snprintf(msg, sizeof(msg), "manifest field 'createdAt': %s", time_msg);
    expect_bad("createdAt", json_string("2009-10-12 17:50:30"), msg);
    expect_bad("createdAt", json_integer(1255369830), msg);
    expect_bad("createdAt", NULL, "manifest field 'createdAt': missing");
    snprintf(msg, sizeof(msg), "manifest field 'archivedAt': %s", time_msg);
    expect_bad("archivedAt", json_string("2023-11-14T22:13:20+02:00"), msg);
    snprintf(msg, sizeof(msg), "manifest field 'restoredAt': %s", time_msg);
    expect_bad("restoredAt", json_string("yesterday"), msg);
    expect_bad("compression", json_string("zstd"),
               "manifest field 'compression': expected \"deflate\" or "
               "\"store\"");
    expect_bad("archiveKey", json_string("archived/other/x.zip"),
               "manifest field 'archiveKey': expected a key under "
               "'archived/<spaceId>/'");
    expect_bad("archiveKey", json_string("archived/space-1_a.B-x/y.zip"),
               "manifest field 'archiveKey': expected a key under "
               "'archived/<spaceId>/'");
    expect_bad("archiveKey", json_string("archived/space-1_a.B/x.tar"),
               "manifest field 'archiveKey': expected a key ending in "
               "'.zip'");
    expect_bad("archiveKey", json_string("archived/space-1_a.B/../x.zip"),
               "manifest field 'archiveKey': empty, '.' or '..' path "
               "component");
    expect_bad("checksum", json_string(SUM "0"),
               "manifest field 'checksum': expected 64 lowercase hex "
               "characters");
    expect_bad("checksum",
               json_string("0123456789ABCDEF0123456789abcdef"
                           "0123456789abcdef0123456789abcdef"),
               "manifest field 'checksum': expected 64 lowercase hex "
               "characters");
    snprintf(msg, sizeof(msg), "manifest field 'size': %s", num_msg);
    expect_bad("size", json_integer(-1), msg);
    expect_bad("size", json_real(12.0), msg);
    expect_bad("size", json_string("12"), msg);
    expect_bad("size", json_null(), msg);
    snprintf(msg, sizeof(msg), "manifest field 'uncompressedSize': %s",
             num_msg);
    expect_bad("uncompressedSize", json_true(), msg);
    snprintf(msg, sizeof(msg), "manifest field 'fileCount': %s", num_msg);
    expect_bad("fileCount", json_integer(-5), msg);
    expect_bad("fileCount", NULL, "manifest field 'fileCount': missing");
}
END_TEST

START_TEST(test_manifest_truncated_json_rejected)
{
    struct mf m;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(valid_json, strlen(valid_json) / 2, &m, &err),
                     WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "manifest: invalid JSON at line"));
    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse("", 0, &m, &err), WK_E_CORRUPT);
    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(NULL, 0, &m, &err), WK_E_CORRUPT);
    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse("[1]", 3, &m, &err), WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "manifest: expected a JSON object");
}
END_TEST

START_TEST(test_manifest_duplicate_keys_rejected)
{
    static const char dup[] = "{\"version\": \"1.0\", \"version\": \"1.0\"}";
    struct mf m;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(dup, strlen(dup), &m, &err), WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate"));
}
END_TEST

START_TEST(test_manifest_unknown_fields_ignored)
{
    struct mf m;
    struct wk_err err;
    char *s = mutate("futureField", json_pack("{s:[i,i]}", "x", 1, 2));

    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(s, strlen(s), &m, &err), WK_OK);
    ck_assert_uint_eq(m.file_count, 42);
    free(s);
    /* restoredAt: null reads as absent */
    s = mutate("restoredAt", json_null());
    ck_assert_int_eq(mf_parse(s, strlen(s), &m, &err), WK_OK);
    ck_assert_int_eq(m.restored_at, 0);
    free(s);
}
END_TEST

START_TEST(test_manifest_to_json_rejects_bad_struct)
{
    struct mf m;
    struct wk_buf b;
    struct wk_err err;

    valid_mf(&m);
    m.checksum[0] = 'A';
    wk_err_clear(&err);
    wk_buf_init(&b, 1 << 16);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg, "manifest field 'checksum': expected 64 "
                              "lowercase hex characters");
    ck_assert_uint_eq(b.len, 0);
    valid_mf(&m);
    m.size = (uint64_t)INT64_MAX + 1;
    wk_err_clear(&err);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg, "manifest field 'size': too large");
    wk_buf_release(&b);
}
END_TEST

START_TEST(test_manifest_history_roundtrip)
{
    struct mf m, back;
    struct wk_buf b;
    struct wk_err err;

    valid_mf(&m);
    m.n_history = 2;
    snprintf(m.history[0].key, sizeof(m.history[0].key),
             "archived/space-1_a.B/workspace-20231001T000000Z.zip");
    memcpy(m.history[0].checksum, SUM, 65);
    m.history[0].size = 77;
    m.history[0].archived_at = 1696118400;
    snprintf(m.history[1].key, sizeof(m.history[1].key),
             "archived/space-1_a.B/workspace-20230901T000000Z.zip");
    memcpy(m.history[1].checksum, SUM, 65);
    m.history[1].size = 66;
    m.history[1].archived_at = 1693526400;
    wk_err_clear(&err);
    wk_buf_init(&b, 1 << 16);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
    ck_assert_ptr_nonnull(strstr(wk_buf_cstr(&b), "\"history\": ["));
    ck_assert_int_eq(mf_parse(b.data, b.len, &back, &err), WK_OK);
    ck_assert_uint_eq(back.n_history, 2);
    ck_assert_str_eq(back.history[1].key, m.history[1].key);
    ck_assert_int_eq(back.history[1].archived_at, 1693526400);
    ck_assert(back.history[0].size == 77);
    wk_buf_release(&b);

    /* a history entry pointing outside the space is refused */
    snprintf(m.history[1].key, sizeof(m.history[1].key),
             "archived/other/workspace-20230901T000000Z.zip");
    wk_buf_init(&b, 1 << 16);
    wk_err_clear(&err);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "history[].archiveKey"));
    wk_buf_release(&b);
    /* no history: the field is absent and parses as empty */
    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(valid_json, strlen(valid_json), &back, &err),
                     WK_OK);
    ck_assert_uint_eq(back.n_history, 0);
}
END_TEST

/* "restoringArchive" names the archive a restore is writing back: written
 * with state restoring only, read back as it was. */
START_TEST(test_manifest_restoring_archive_roundtrip)
{
    struct mf m, back;
    struct wk_buf b;
    struct wk_err err;

    valid_mf(&m);
    m.state = MF_RESTORING;
    snprintf(m.restoring_archive, sizeof(m.restoring_archive),
             "archived/space-1_a.B/20220101T000000Z.zip");
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&err);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
    ck_assert_ptr_nonnull(strstr(
        wk_buf_cstr(&b), "\"restoringArchive\": "
                         "\"archived/space-1_a.B/20220101T000000Z.zip\""));
    ck_assert_int_eq(mf_parse(b.data, b.len, &back, &err), WK_OK);
    ck_assert_str_eq(back.restoring_archive, m.restoring_archive);

    /* any other state: not written, and ignored when read */
    m.state = MF_ACTIVE;
    wk_buf_reset(&b);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
    ck_assert_ptr_null(strstr(wk_buf_cstr(&b), "restoringArchive"));
    wk_buf_release(&b);
}
END_TEST

/* Written by an older version (no such field): parses, "" (the current
 * archive is the one being restored); a wrong type is refused by name. */
START_TEST(test_manifest_restoring_archive_optional)
{
    struct mf m;
    struct wk_err err;
    char *text = mutate("state", json_string("restoring"));

    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(text, strlen(text), &m, &err), WK_OK);
    ck_assert_int_eq(m.state, MF_RESTORING);
    ck_assert_str_eq(m.restoring_archive, "");
    free(text);
    expect_bad("restoringArchive", json_integer(7),
               "manifest field 'restoringArchive': expected a string of at "
               "most 255 bytes");
}
END_TEST

Suite *manifest_suite(void)
{
    Suite *s = suite_create("manifest");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_manifest_key);
    tcase_add_test(tc, test_manifest_states_and_no_archive);
    tcase_add_test(tc, test_manifest_to_json_key_order);
    tcase_add_test(tc, test_manifest_roundtrip);
    tcase_add_test(tc, test_manifest_parse_without_restored_at);
    tcase_add_test(tc, test_manifest_invalid_fields_rejected);
    tcase_add_test(tc, test_manifest_truncated_json_rejected);
    tcase_add_test(tc, test_manifest_duplicate_keys_rejected);
    tcase_add_test(tc, test_manifest_unknown_fields_ignored);
    tcase_add_test(tc, test_manifest_to_json_rejects_bad_struct);
    tcase_add_test(tc, test_manifest_history_roundtrip);
    tcase_add_test(tc, test_manifest_encryption_roundtrip);
    tcase_add_test(tc, test_manifest_restoring_archive_roundtrip);
    tcase_add_test(tc, test_manifest_restoring_archive_optional);
    suite_add_tcase(s, tc);
    return s;
}
