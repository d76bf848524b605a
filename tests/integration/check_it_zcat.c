/* zcat against S3 (the moto server run.sh starts): an archive of over
 * 200 MiB is streamed into the test bucket with zipw (multipart, 16 MiB
 * parts, 4 in flight), then single entries are read back with ranged GETs.
 * Reading a small entry must fetch under 1% of the archive; the figures
 * (bytes fetched, requests, archive size) are printed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_buf.h"
#include "zip/zcat.h"
#include "zip/zipw.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/integration/it_util.h"
#include "tests/integration/suites.h"

#define MIB        (1024u * 1024u)
#define CHUNK      MIB /* bytes handed to zipw at once */
#define PART_BYTES (16u * MIB)
#define N_NOTES    100
#define N_BIG      4
#define NOTE_MAX   4096

/* Stored entries of random bytes; the first is the one read back whole.
 * They sum to 204 MiB, so the archive is over 200 MiB. */
static const uint64_t big_sizes[N_BIG] = { 20u * MIB, 64u * MIB, 64u * MIB,
                                           56u * MIB };
/* Before which note each big entry goes (N_NOTES: after the last). */
static const int big_before[N_BIG] = { 40, 70, 70, 90 };

struct archive_info {
    char key[128];
    uint64_t size;
    char big_hex[N_BIG][65]; /* SHA-256 of each big entry */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: about a GiB/s, and incompressible. */
static void fill_random(unsigned char *p, size_t n, uint64_t *state)
{
    uint64_t x = *state;

    for (size_t i = 0; i < n; i += 8) {
        uint64_t v;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v = x * 0x2545f4914f6cdd1dULL;
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
    *state = x;
}

static void note_name(int i, char *buf, size_t len)
{
    snprintf(buf, len, "space-v1/notes/note-%03d.md", i);
}

/* A note's text: a few hundred bytes to a few KiB of Markdown. */
static size_t note_text(int i, char *buf, size_t cap)
{
    size_t n = 0;
    int lines = 5 + (i * 37) % 60;

    n += (size_t)snprintf(buf + n, cap - n, "# Note %d\n\n", i);
    for (int l = 0; l < lines && n + 80 < cap; l++)
        n += (size_t)snprintf(buf + n, cap - n, "- item %d of note %d: %08x\n",
                              l, i, (unsigned)(i * 2654435761u + (unsigned)l));
    return n;
}

static void add_note(struct zipw *zw, int i)
{
    char name[64], text[NOTE_MAX];
    size_t n = note_text(i, text, sizeof(text));
    struct wk_err err;

    note_name(i, name, sizeof(name));
    wk_err_clear(&err);
    ck_assert_msg(zipw_entry_begin(zw, name, n, 1700000000 + i, 0, &err) ==
                      WK_OK,
                  "%s", err.msg);
    ck_assert_int_eq(zipw_entry_write(zw, text, n, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
}

static void add_big(struct zipw *zw, int b, unsigned char *buf,
                    struct archive_info *ai)
{
    char name[64];
    uint64_t left = big_sizes[b];
    uint64_t state = 0x9e3779b97f4a7c15ULL + (uint64_t)b;
    struct store_sha256 *h = NULL;
    struct wk_err err;

    snprintf(name, sizeof(name), "space-v1/files/big-%d.bin", b);
    wk_err_clear(&err);
    ck_assert_int_eq(store_sha256_new(&h, &err), WK_OK);
    ck_assert_msg(zipw_entry_begin(zw, name, left, 1700000000, 1, &err) ==
                      WK_OK,
                  "%s", err.msg);
    while (left > 0) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;

        fill_random(buf, n, &state);
        store_sha256_update(h, buf, n);
        ck_assert_msg(zipw_entry_write(zw, buf, n, &err) == WK_OK, "%s",
                      err.msg);
        left -= n;
    }
    ck_assert_msg(zipw_entry_end(zw, &err) == WK_OK, "%s", err.msg);
    store_sha256_final_hex(h, ai->big_hex[b]);
    store_sha256_free(h);
}

/* Stream the archive into the bucket: notes with the big entries among
 * them, then one last small note, the worst case for a lookup (libarchive
 * visits every local header before the wanted one). */
static void build_archive(struct store *st, struct archive_info *ai)
{
    struct store_writer_opts wo = { .part_bytes = PART_BYTES,
                                    .parts_in_flight = 4 };
    struct zipw_opts zo = { .level = 6 };
    struct store_writer *w = NULL;
    struct zipw *zw = NULL;
    unsigned char *buf = malloc(CHUNK);
    char space[33];
    struct wk_err err;

    ck_assert_ptr_nonnull(buf);
    it_space_id(space);
    snprintf(ai->key, sizeof(ai->key),
             "archived/%s/workspace-20250101T000000Z.zip", space);
    wk_err_clear(&err);
    ck_assert_msg(store_open_write(st, ai->key, &wo, &w, &err) == WK_OK, "%s",
                  err.msg);
    ck_assert_int_eq(zipw_new(w, &zo, &zw, &err), WK_OK);
    for (int i = 0; i <= N_NOTES; i++) {
        for (int b = 0; b < N_BIG; b++)
            if (big_before[b] == i)
                add_big(zw, b, buf, ai);
        if (i < N_NOTES)
            add_note(zw, i);
    }
    add_note(zw, N_NOTES); /* the last entry */
    ck_assert_msg(zipw_finish(zw, &err) == WK_OK, "%s", err.msg);
    ai->size = zipw_bytes_out(zw);
    ck_assert_msg(store_writer_commit(w, &err) == WK_OK, "%s", err.msg);
    zipw_free(zw);
    store_writer_free(w);
    free(buf);
}

static enum wk_code sink_buf(const void *p, size_t n, void *ud,
                             struct wk_err *err)
{
    return wk_buf_append(ud, p, n, err);
}

static enum wk_code sink_hash(const void *p, size_t n, void *ud,
                              struct wk_err *err)
{
    (void)err;
    store_sha256_update(ud, p, n);
    return WK_OK;
}

/* Read note i and check its text; returns the stats. */
static struct zcat_stats cat_note(struct store *st,
                                  const struct archive_info *ai, int i)
{
    char name[64], want[NOTE_MAX];
    size_t want_len = note_text(i, want, sizeof(want));
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;
    double t0 = now_s();

    note_name(i, name, sizeof(name));
    wk_buf_init(&out, 1u << 20);
    wk_err_clear(&err);
    ck_assert_msg(zcat_read(st, ai->key, ai->size, NULL, name, sink_buf, &out,
                            &s, &err) == WK_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(out.len, want_len);
    ck_assert(memcmp(out.data, want, want_len) == 0);
    wk_buf_release(&out);
    printf("it_zcat: '%s': %zu bytes out, %llu bytes fetched in %u requests "
           "(%.4f%% of the %llu-byte archive), %.3f s\n",
           name, want_len, (unsigned long long)s.bytes_fetched, s.requests,
           100.0 * (double)s.bytes_fetched / (double)ai->size,
           (unsigned long long)ai->size, now_s() - t0);
    fflush(stdout);
    return s;
}

START_TEST(test_it_zcat_big_archive_on_s3)
{
    struct store *st = it_s3_store(NULL);
    struct archive_info ai;
    struct store_stat sb;
    struct zcat_stats s;
    struct store_sha256 *h = NULL;
    char hex[65];
    const char *keys[1];
    size_t ndel = 0;
    struct wk_err err;
    double t0 = now_s();

    memset(&ai, 0, sizeof(ai));
    build_archive(st, &ai);
    printf("it_zcat: wrote '%s': %llu bytes in %.1f s\n", ai.key,
           (unsigned long long)ai.size, now_s() - t0);
    fflush(stdout);
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(st, ai.key, &sb, &err), WK_OK);
    ck_assert(sb.size == ai.size);
    ck_assert(ai.size >= 200ull * MIB);

    /* the last entry, after every big one: the worst case */
    s = cat_note(st, &ai, N_NOTES);
    ck_assert_uint_lt(s.bytes_fetched, ai.size / 100);
    ck_assert_uint_lt(s.requests, 32);
    /* a note between big entries, and the first one */
    s = cat_note(st, &ai, 80);
    ck_assert_uint_lt(s.bytes_fetched, ai.size / 100);
    s = cat_note(st, &ai, 0);
    ck_assert_uint_lt(s.bytes_fetched, ai.size / 100);

    /* a missing entry: every local header is visited */
    wk_err_clear(&err);
    ck_assert_int_eq(zcat_read(st, ai.key, ai.size, NULL,
                               "space-v1/notes/none.md", sink_hash, NULL, &s,
                               &err),
                     WK_E_NOTFOUND);
    printf("it_zcat: missing entry: %llu bytes fetched in %u requests\n",
           (unsigned long long)s.bytes_fetched, s.requests);
    fflush(stdout);
    ck_assert_uint_lt(s.bytes_fetched, ai.size / 100);

    /* a 20 MiB entry, whole */
    t0 = now_s();
    ck_assert_int_eq(store_sha256_new(&h, &err), WK_OK);
    ck_assert_msg(zcat_read(st, ai.key, ai.size, NULL,
                            "space-v1/files/big-0.bin", sink_hash, h, &s,
                            &err) == WK_OK,
                  "%s", err.msg);
    store_sha256_final_hex(h, hex);
    store_sha256_free(h);
    ck_assert_str_eq(hex, ai.big_hex[0]);
    printf("it_zcat: 'space-v1/files/big-0.bin': %llu bytes out, %llu bytes "
           "fetched in %u requests, %.3f s\n",
           (unsigned long long)big_sizes[0],
           (unsigned long long)s.bytes_fetched, s.requests, now_s() - t0);
    fflush(stdout);
    /* stored: its bytes, the ends of the archive and a few headers */
    ck_assert_uint_ge(s.bytes_fetched, big_sizes[0]);
    ck_assert_uint_lt(s.bytes_fetched, big_sizes[0] + MIB / 4);

    keys[0] = ai.key;
    ck_assert_int_eq(store_delete_many(st, keys, 1, &ndel, &err), WK_OK);
    store_free(st);
}
END_TEST

Suite *it_zcat_suite(void)
{
    Suite *s = suite_create("it_zcat");
    TCase *tc = tcase_create("s3");

    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_it_zcat_big_archive_on_s3);
    suite_add_tcase(s, tc);
    return s;
}
