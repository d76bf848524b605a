/* seal: keyring parsing, data-key wrapping, the sealed stream (round trip,
 * tampering, truncation, range reads). */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
#define ID_A  "7763a8e2a8c815ea" /* HMAC-SHA256 by Python's hmac module */
#define ID_B  "81a45d6505247a98"

static struct seal_keyring *ring(const char *text)
{
    struct seal_keyring *kr = NULL;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_msg(seal_keyring_parse(text, strlen(text), "test", &kr, &err) ==
                      WK_OK,
                  "%s", err.msg);
    return kr;
}

static bool has(const unsigned char *h, size_t n, const void *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(h + i, needle, k) == 0)
            return true;
    return false;
}

START_TEST(test_seal_keyring_forms)
{
    struct seal_keyring *kr;
    unsigned char raw[32];
    struct wk_err err;

    kr = ring("# current\r\n" KEY_B "\r\n\n  " KEY_A "  \n# old\n");
    ck_assert_uint_eq(seal_keyring_count(kr), 2);
    ck_assert_str_eq(seal_keyring_id(kr, 0), ID_B);
    ck_assert_str_eq(seal_keyring_id(kr, 1), ID_A);
    seal_keyring_free(kr);

    /* 32 raw bytes: one key, the same as its hex form */
    for (unsigned i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    wk_err_clear(&err);
    ck_assert_int_eq(seal_keyring_parse(raw, sizeof(raw), "raw", &kr, &err),
                     WK_OK);
    ck_assert_uint_eq(seal_keyring_count(kr), 1);
    ck_assert_str_eq(seal_keyring_id(kr, 0), ID_A);
    seal_keyring_free(kr);
}
END_TEST

START_TEST(test_seal_keyring_refused)
{
    static const struct {
        const char *text, *expect;
    } cases[] = {
        { "", "holds no key" },
        { "# nothing\n\n", "holds no key" },
        { KEY_A "0\n", "line 1: a key is 64 hex digits" },
        { "\n" KEY_A "\nabc\n", "line 3: a key is 64 hex digits" },
        { "0g0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
          "line 1: not a hex digit" },
        { KEY_A "\n" KEY_B "\n" KEY_A "\n", "line 3: the same key as line 1" },
    };
    struct seal_keyring *kr;
    struct wk_err err;
    char many[17 * 66 + 1];
    unsigned char bin[31];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kr = NULL;
        wk_err_clear(&err);
        ck_assert_int_eq(seal_keyring_parse(cases[i].text,
                                            strlen(cases[i].text), "kf", &kr,
                                            &err),
                         WK_E_INVAL);
        ck_assert_ptr_null(kr);
        ck_assert_msg(strstr(err.msg, cases[i].expect), "case %zu: '%s'", i,
                      err.msg);
        /* never the key material */
        ck_assert(!strstr(err.msg, "0102030405"));
    }
    /* 17 different keys */
    for (unsigned i = 0; i < 17; i++)
        snprintf(many + 65 * i, sizeof(many) - 65 * i,
                 "%02x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c"
                 "1d1e1f\n",
                 i);
    wk_err_clear(&err);
    ck_assert_int_eq(seal_keyring_parse(many, strlen(many), "kf", &kr, &err),
                     WK_E_INVAL);
    ck_assert(strstr(err.msg, "more than 16 keys"));
    /* binary, not 32 bytes */
    memset(bin, 0x01, sizeof(bin));
    wk_err_clear(&err);
    ck_assert_int_eq(seal_keyring_parse(bin, sizeof(bin), "kf", &kr, &err),
                     WK_E_INVAL);
    ck_assert(strstr(err.msg, "neither 32 raw bytes"));
    /* a file that does not exist */
    wk_err_clear(&err);
    ck_assert_int_eq(seal_keyring_load("/nonexistent/key", &kr, &err),
                     WK_E_INVAL);
    ck_assert(strstr(err.msg, "/nonexistent/key"));
}
END_TEST

START_TEST(test_seal_data_key_wrapping)
{
    struct seal_keyring *a = ring(KEY_A "\n");
    struct seal_keyring *ba = ring(KEY_B "\n" KEY_A "\n");
    struct seal_keyring *b = ring(KEY_B "\n");
    struct seal_info info, bad;
    struct seal_dk dk, got;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(seal_dk_new(a, "space-1", &info, &dk, &err), WK_OK);
    ck_assert(info.on);
    ck_assert_str_eq(info.key_id, ID_A);
    ck_assert(seal_wrapped_valid(info.wrapped));
    ck_assert_uint_eq(info.chunk_bytes, SEAL_CHUNK_BYTES);

    /* rotation: an older key still opens what it wrapped */
    ck_assert_int_eq(seal_dk_open(ba, "space-1", &info, &got, &err), WK_OK);
    ck_assert(memcmp(got.key, dk.key, SEAL_KEY_BYTES) == 0);
    /* new archives are wrapped under the first key */
    {
        struct seal_info i2;
        struct seal_dk d2;
        ck_assert_int_eq(seal_dk_new(ba, "space-1", &i2, &d2, &err), WK_OK);
        ck_assert_str_eq(i2.key_id, ID_B);
        ck_assert(memcmp(d2.key, dk.key, SEAL_KEY_BYTES) != 0);
        ck_assert_str_ne(i2.wrapped, info.wrapped);
    }
    /* key not configured */
    ck_assert_int_eq(seal_dk_open(b, "space-1", &info, &got, &err), WK_E_INVAL);
    ck_assert(strstr(err.msg, ID_A));
    ck_assert(strstr(err.msg, "SILA_ENCRYPTION_KEY_FILE does not hold"));
    /* moved to another space */
    wk_err_clear(&err);
    ck_assert_int_eq(seal_dk_open(a, "space-2", &info, &got, &err),
                     WK_E_CORRUPT);
    ck_assert(strstr(err.msg, "does not authenticate"));
    /* any changed character of the wrapped key */
    for (size_t i = 0; i < SEAL_WRAPPED_CHARS; i += 7) {
        bad = info;
        bad.wrapped[i] = bad.wrapped[i] == 'A' ? 'B' : 'A';
        wk_err_clear(&err);
        ck_assert_int_eq(seal_dk_open(a, "space-1", &bad, &got, &err),
                         WK_E_CORRUPT);
    }
    /* claiming another key id: that key cannot open it */
    bad = info;
    memcpy(bad.key_id, ID_B, sizeof(bad.key_id));
    wk_err_clear(&err);
    ck_assert_int_eq(seal_dk_open(ba, "space-1", &bad, &got, &err),
                     WK_E_CORRUPT);
    /* malformed records */
    bad = info;
    bad.wrapped[5] = '*';
    ck_assert(!seal_wrapped_valid(bad.wrapped));
    wk_err_clear(&err);
    ck_assert_int_eq(seal_dk_open(a, "space-1", &bad, &got, &err),
                     WK_E_CORRUPT);
    ck_assert(!seal_key_id_valid("7763A8E2A8C815EA"));
    ck_assert(!seal_key_id_valid("7763a8e2a8c815e"));
    ck_assert(!seal_chunk_valid(1024) && !seal_chunk_valid(1u << 30));
    /* wrapped again under the current key: the same data key, now opened
     * by the new key alone */
    {
        struct seal_info re;
        ck_assert_int_eq(seal_dk_wrap(ba, "space-1", &dk, &re, &err), WK_OK);
        ck_assert_str_eq(re.key_id, ID_B);
        ck_assert_uint_eq(re.chunk_bytes, dk.chunk_bytes);
        ck_assert_int_eq(seal_dk_open(b, "space-1", &re, &got, &err), WK_OK);
        ck_assert(memcmp(got.key, dk.key, SEAL_KEY_BYTES) == 0);
        ck_assert_int_eq(seal_dk_open(a, "space-1", &re, &got, &err),
                         WK_E_INVAL);
    }
    seal_dk_wipe(&dk);
    seal_dk_wipe(&got);
    seal_keyring_free(a);
    seal_keyring_free(ba);
    seal_keyring_free(b);
}
END_TEST

/* Seal plain (n bytes) with dk through a mem store writer, written in
 * pieces of step bytes; the stored object into *out (malloc'd). */
static size_t seal_it(const struct seal_dk *dk, const unsigned char *plain,
                      size_t n, size_t step, unsigned char **out)
{
    struct store *st;
    struct store_writer *w;
    struct seal_writer *sw;
    struct store_writer_opts o;
    struct wk_buf b;
    struct wk_err err;
    char hex[65], want[65];

    wk_err_clear(&err);
    memset(&o, 0, sizeof(o));
    ck_assert_int_eq(store_mem_new(&st, &err), WK_OK);
    ck_assert_int_eq(store_open_write(st, "archived/x/a.zip", &o, &w, &err),
                     WK_OK);
    ck_assert_int_eq(seal_writer_new(w, dk, &sw, &err), WK_OK);
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        ck_assert_int_eq(
            store_writer_write(seal_writer_sink(sw), plain + off, k, &err),
            WK_OK);
    }
    ck_assert_int_eq(store_writer_commit(seal_writer_sink(sw), &err), WK_OK);
    wk_buf_init(&b, 64u << 20);
    ck_assert_int_eq(store_get_all(st, "archived/x/a.zip", &b, &err), WK_OK);
    ck_assert_uint_eq(b.len, seal_stored_size(n, dk->chunk_bytes));
    ck_assert_uint_eq(seal_writer_bytes_out(sw), b.len);
    seal_writer_sha256_hex(sw, hex);
    store_sha256_hex(b.data, b.len, want);
    ck_assert_str_eq(hex, want);
    store_writer_free(seal_writer_sink(sw));
    store_free(st);
    *out = (unsigned char *)b.data;
    return b.len;
}

/* Open a whole stored object fed in pieces of step bytes. */
static enum wk_code open_all(const struct seal_dk *dk, const unsigned char *s,
                             size_t n, size_t step, struct wk_buf *out,
                             struct wk_err *err)
{
    struct seal_dec *d;
    enum wk_code rc;

    wk_buf_reset(out);
    rc = seal_dec_new(dk, n, &d, err);
    if (rc != WK_OK)
        return rc;
    for (size_t off = 0; off < n && rc == WK_OK; off += step) {
        size_t k = n - off < step ? n - off : step;
        rc = seal_dec_update(d, s + off, k, out, err);
    }
    if (rc == WK_OK)
        rc = seal_dec_final(d, err);
    seal_dec_free(d);
    return rc;
}

static void test_dk(struct seal_dk *dk, uint32_t chunk)
{
    memset(dk, 0, sizeof(*dk));
    for (unsigned i = 0; i < SEAL_KEY_BYTES; i++)
        dk->key[i] = (unsigned char)(i * 7 + 3);
    dk->chunk_bytes = chunk;
}

START_TEST(test_seal_stream_round_trip)
{
    const uint32_t c = SEAL_CHUNK_MIN;
    const size_t sizes[] = { 0, 1, c - 1, c, c + 1, 3 * c, 3 * c + 7, 70000 };
    const size_t steps[] = { 1, 13, c, c + 16, 100000 };
    struct seal_dk dk;
    struct wk_buf out;
    struct wk_err err;
    unsigned char *plain = malloc(100000);

    test_dk(&dk, c);
    ut_noise(plain, 100000, 5);
    memcpy(plain, "a very recognisable plaintext marker", 36);
    wk_buf_init(&out, 1u << 20);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *s;
        size_t n = seal_it(&dk, plain, sizes[i], i == 1 ? 1 : 999, &s);
        uint64_t p;
        wk_err_clear(&err);
        ck_assert_int_eq(seal_plain_size(n, c, &p, &err), WK_OK);
        ck_assert_uint_eq(p, sizes[i]);
        ck_assert(memcmp(s, "SILASEAL\x01\x00\x00\x00\x00\x00\x10\x00", 16) ==
                  0);
        if (sizes[i] >= 36)
            ck_assert(!has(s, n, plain, 36));
        for (size_t j = 0; j < sizeof(steps) / sizeof(steps[0]); j++) {
            ck_assert_msg(open_all(&dk, s, n, steps[j], &out, &err) == WK_OK,
                          "size %zu step %zu: %s", sizes[i], steps[j], err.msg);
            ck_assert_uint_eq(out.len, sizes[i]);
            ck_assert(sizes[i] == 0 || memcmp(out.data, plain, sizes[i]) == 0);
        }
        free(s);
    }
    /* the same plaintext under a fresh writer gives the same bytes (same
     * key, deterministic nonces): what a resumed upload relies on */
    {
        unsigned char *s1, *s2;
        size_t n1 = seal_it(&dk, plain, 70000, 4000, &s1);
        size_t n2 = seal_it(&dk, plain, 70000, 65536, &s2);
        ck_assert_uint_eq(n1, n2);
        ck_assert(memcmp(s1, s2, n1) == 0);
        free(s1);
        free(s2);
    }
    wk_buf_release(&out);
    free(plain);
}
END_TEST

START_TEST(test_seal_stream_tamper)
{
    const uint32_t c = SEAL_CHUNK_MIN;
    const size_t full = c + SEAL_TAG_BYTES;
    struct seal_dk dk, other;
    struct wk_buf out;
    struct wk_err err;
    unsigned char *plain = malloc(5 * c + 100), *s, *t;
    size_t n, positions[8];
    uint64_t p;

    test_dk(&dk, c);
    ut_noise(plain, 5 * c + 100, 9);
    n = seal_it(&dk, plain, 5 * c + 100, 4096, &s);
    t = malloc(n + full);
    wk_buf_init(&out, 1u << 20);

    /* one flipped bit anywhere: header, ciphertext, tag, last byte */
    positions[0] = 3;
    positions[1] = 15;
    positions[2] = 16;
    positions[3] = 16 + c - 1;
    positions[4] = 16 + c;              /* first tag byte */
    positions[5] = 16 + 2 * full + 100; /* third chunk */
    positions[6] = n - SEAL_TAG_BYTES - 1;
    positions[7] = n - 1;
    for (size_t i = 0; i < 8; i++) {
        memcpy(t, s, n);
        t[positions[i]] ^= 0x20;
        wk_err_clear(&err);
        ck_assert_msg(open_all(&dk, t, n, 5000, &out, &err) == WK_E_CORRUPT,
                      "flip at %zu accepted", positions[i]);
        /* nothing of a failing chunk is handed out */
        ck_assert_uint_le(out.len, positions[i] < 16 ? 0 : positions[i]);
    }
    /* the last chunk dropped: a valid size, but chunk 4 is not final */
    wk_err_clear(&err);
    ck_assert_int_eq(open_all(&dk, s, 16 + 5 * full, 5000, &out, &err),
                     WK_E_CORRUPT);
    ck_assert(strstr(err.msg, "chunk 4 does not authenticate"));
    /* two chunks swapped */
    memcpy(t, s, n);
    memcpy(t + 16 + full, s + 16 + 2 * full, full);
    memcpy(t + 16 + 2 * full, s + 16 + full, full);
    wk_err_clear(&err);
    ck_assert_int_eq(open_all(&dk, t, n, n, &out, &err), WK_E_CORRUPT);
    /* a chunk appended (a copy of the first one) */
    memcpy(t, s, n);
    memcpy(t + n, s + 16, full);
    wk_err_clear(&err);
    ck_assert_int_eq(open_all(&dk, t, n + full, n, &out, &err), WK_E_CORRUPT);
    /* sizes no sealing produces */
    wk_err_clear(&err);
    ck_assert_int_eq(seal_plain_size(16 + 15, c, &p, &err), WK_E_CORRUPT);
    ck_assert_int_eq(seal_plain_size(16 + full + 16, c, &p, &err),
                     WK_E_CORRUPT);
    /* fed more than the object */
    {
        struct seal_dec *d;
        wk_err_clear(&err);
        ck_assert_int_eq(seal_dec_new(&dk, n, &d, &err), WK_OK);
        ck_assert_int_eq(seal_dec_update(d, s, n, &out, &err), WK_OK);
        ck_assert_int_eq(seal_dec_update(d, s, 1, &out, &err), WK_E_CORRUPT);
        seal_dec_free(d);
        /* and less: final says so */
        wk_err_clear(&err);
        ck_assert_int_eq(seal_dec_new(&dk, n, &d, &err), WK_OK);
        ck_assert_int_eq(seal_dec_update(d, s, n - 1, &out, &err), WK_OK);
        ck_assert_int_eq(seal_dec_final(d, &err), WK_E_CORRUPT);
        seal_dec_free(d);
    }
    /* another data key */
    test_dk(&other, c);
    other.key[0] ^= 1;
    wk_err_clear(&err);
    ck_assert_int_eq(open_all(&other, s, n, n, &out, &err), WK_E_CORRUPT);
    /* another chunk size: the header says otherwise */
    test_dk(&other, 2 * c);
    wk_err_clear(&err);
    if (seal_plain_size(n, 2 * c, &p, &err) == WK_OK) {
        ck_assert_int_eq(open_all(&other, s, n, n, &out, &err), WK_E_CORRUPT);
    }
    wk_buf_release(&out);
    free(plain);
    free(s);
    free(t);
}
END_TEST

START_TEST(test_seal_range_reads)
{
    const uint32_t c = SEAL_CHUNK_MIN;
    const size_t psize = 7 * c + 123;
    const uint64_t ranges[][2] = {
        { 0, 1 },          { 0, 22 },          { c - 1, 2 },     { c, c },
        { 3 * c + 5, 1 },  { psize - 22, 22 }, { psize - 1, 1 }, { 0, psize },
        { 2 * c, 10 * c }, /* past the end: clamped */
    };
    struct seal_dk dk;
    struct wk_buf out;
    struct wk_err err;
    unsigned char *plain = malloc(psize), *s;
    size_t n;

    test_dk(&dk, c);
    ut_noise(plain, psize, 3);
    n = seal_it(&dk, plain, psize, 65536, &s);
    wk_buf_init(&out, 1u << 20);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        uint64_t off = ranges[i][0], len = ranges[i][1], so, sl, po;
        uint64_t end = off + len > psize ? psize : off + len;
        seal_range(psize, c, off, len, &so, &sl, &po);
        ck_assert_uint_le(po, off);
        ck_assert_uint_le(so + sl, n);
        wk_buf_reset(&out);
        wk_err_clear(&err);
        ck_assert_msg(seal_open_range(&dk, psize, so, s + so, (size_t)sl, &out,
                                      &err) == WK_OK,
                      "range %zu: %s", i, err.msg);
        ck_assert_uint_ge(po + out.len, end);
        ck_assert(memcmp(out.data, plain + po, out.len) == 0);
        /* whole chunks only: at most one chunk beyond each end */
        ck_assert_uint_lt(off - po, c);
        ck_assert_uint_le(po + out.len - end, c);
        /* a flipped byte inside the range */
        s[so + sl / 2] ^= 1;
        wk_buf_reset(&out);
        ck_assert_int_eq(
            seal_open_range(&dk, psize, so, s + so, (size_t)sl, &out, &err),
            WK_E_CORRUPT);
        s[so + sl / 2] ^= 1;
    }
    /* the last chunk read as if it were a middle one: its nonce differs */
    {
        uint64_t so, sl, po;
        seal_range(psize, c, psize - 1, 1, &so, &sl, &po);
        wk_buf_reset(&out);
        wk_err_clear(&err);
        ck_assert_int_eq(
            seal_open_range(&dk, psize + c, so, s + so, (size_t)sl, &out, &err),
            WK_E_CORRUPT);
    }
    wk_buf_release(&out);
    free(plain);
    free(s);
}
END_TEST

Suite *seal_suite(void)
{
    Suite *s = suite_create("seal");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_seal_keyring_forms);
    tcase_add_test(tc, test_seal_keyring_refused);
    tcase_add_test(tc, test_seal_data_key_wrapping);
    tcase_add_test(tc, test_seal_stream_round_trip);
    tcase_add_test(tc, test_seal_stream_tamper);
    tcase_add_test(tc, test_seal_range_reads);
    suite_add_tcase(s, tc);
    return s;
}
