#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "zip/zsniff.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

START_TEST(test_zsniff_magic_numbers)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *name;
    } cases[] = {
        { "\xff\xd8\xff\xe0\x00\x10JFIF", 10, "jpeg" },
        { "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 16, "png" },
        { "GIF89a\x01\x00", 8, "gif" },
        { "RIFF\x24\x00\x00\x00WEBPVP8 ", 16, "webp" },
        { "\x00\x00\x00\x20"
          "ftypisom",
          12, "mp4" },
        { "PK\x03\x04\x14\x00", 6, "zip" },
        { "\x1f\x8b\x08\x00", 4, "gzip" },
        { "\x28\xb5\x2f\xfd\x04", 5, "zstd" },
        { "%PDF-1.7\n", 9, "pdf" },
        { "\x1a\x45\xdf\xa3\x9f", 5, "matroska" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = NULL;
        ck_assert_msg(zsniff_compressed(cases[i].bytes, cases[i].len, &why),
                      "%s not recognised", cases[i].name);
        ck_assert_str_eq(why, cases[i].name);
    }
}
END_TEST

START_TEST(test_zsniff_text_is_compressible)
{
    /* what most of a space is: ops logs (JSON lines), markdown, base64 */
    char ops[8192] = "";
    static const char b64[] =
        "TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcmsuIFRoaXMgaXMgYmFzZTY0IHRleHQg"
        "d2l0aCBzaXh0eS1mb3VyIHN5bWJvbHMgYW5kIGFib3V0IDYgYml0cyBvZiBlbnRy"
        "b3B5IHBlciBieXRlLCBsaWtlIGEgc2VjcmV0cyBmaWxlIG9yIGFuIGVtYmVkZGVk"
        "IGltYWdlLiBJdCBzaHJpbmtzIHVuZGVyIGRlZmxhdGUgYnkgYWJvdXQgYSBxdWFy"
        "dGVyLCBzbyBpdCBpcyBkZWZsYXRlZC4gTW9yZSB0ZXh0IHRvIG1ha2UgaXQgbG9u"
        "ZyBlbm91Z2ggZm9yIHRoZSBlbnRyb3B5IGVzdGltYXRlIHRvIG1lYW4gc29tZXRo";
    const char *why = "unset";

    for (size_t i = 0, len = 0; len + 100 < sizeof(ops); i++)
        len += (size_t)snprintf(
            ops + len, sizeof(ops) - len,
            "[%zu,\"0123456789abcdef\",\"set\",\"msg-%zu\",\"hello %zu\"]\n", i,
            i * 7, i * 13);
    ck_assert(!zsniff_compressed(ops, strlen(ops), &why));
    ck_assert_str_eq(why, "unset");
    ck_assert(!zsniff_compressed(b64, strlen(b64), NULL));
    ck_assert(!zsniff_compressed("", 0, NULL));
}
END_TEST

START_TEST(test_zsniff_entropy)
{
    unsigned char *p = malloc(65536);
    const char *why = NULL;

    ut_noise(p, 65536, 42);
    ck_assert(zsniff_compressed(p, 65536, &why));
    ck_assert_str_eq(why, "entropy");
    /* too short a sample to judge: deflated */
    ck_assert(!zsniff_compressed(p, 100, NULL));
    /* noise after a text header of 4 KiB: the sample decides */
    memset(p, 'a', ZSNIFF_SAMPLE);
    ck_assert(!zsniff_compressed(p, 65536, NULL));
    free(p);
}
END_TEST

START_TEST(test_zsniff_store_safe)
{
    unsigned char *p = malloc(100000);

    ck_assert(zsniff_store_safe("", 0));
    ck_assert(zsniff_store_safe("PK\x07", 3));
    ck_assert(!zsniff_store_safe("PK\x07\x08", 4));
    ck_assert(!zsniff_store_safe("PPK\x07\x08", 5));
    ck_assert(!zsniff_store_safe("xxPK\x07\x08yy", 8));
    ck_assert(zsniff_store_safe("PK\x03\x04PK\x01\x02PK\x07", 11));
    ut_noise(p, 100000, 7);
    /* whatever noise holds by chance, a planted signature is found */
    memcpy(p + 99996, "PK\x07\x08", 4);
    ck_assert(!zsniff_store_safe(p, 100000));
    ck_assert(zsniff_store_safe(p + 99996, 3));
    free(p);
}
END_TEST

/* Feed p in pieces of `step` bytes; the verdict. */
static bool desc_ok(const unsigned char *p, size_t n, size_t step)
{
    struct zsniff_desc d;
    zsniff_desc_init(&d);
    for (size_t off = 0; off < n; off += step)
        if (!zsniff_desc_feed(&d, p + off, n - off < step ? n - off : step))
            return false;
    return zsniff_desc_end(&d);
}

static void plant(unsigned char *p, size_t at)
{
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)at);
    memcpy(p + at, "PK\x07\x08", 4);
    p[at + 4] = (unsigned char)crc;
    p[at + 5] = (unsigned char)(crc >> 8);
    p[at + 6] = (unsigned char)(crc >> 16);
    p[at + 7] = (unsigned char)(crc >> 24);
}

/* Only a signature followed by the CRC so far ends a stored entry early;
 * found wherever the reads happen to cut the data. */
START_TEST(test_zsniff_desc_hazard)
{
    static const size_t steps[] = { 1, 3, 7, 8, 9, 1000, 65536, 1u << 20 };
    size_t n = 300000;
    unsigned char *p = malloc(n);

    ut_noise(p, n, 99);
    /* signatures with a wrong CRC are harmless: stored */
    memcpy(p + 1000, "PK\x07\x08\0\0\0\0", 8);
    memcpy(p + 70000, "PK\x07\x08", 4);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        ck_assert_msg(desc_ok(p, n, steps[i]), "step %zu", steps[i]);
    /* a crafted one anywhere, across any cut, is found */
    for (size_t at = 65530; at < 65540; at++) {
        unsigned char *q = malloc(n);
        memcpy(q, p, n);
        plant(q, at);
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
            ck_assert_msg(!desc_ok(q, n, steps[i]), "at %zu step %zu", at,
                          steps[i]);
        free(q);
    }
    plant(p, 0); /* at the very start: the CRC of nothing */
    ck_assert(!desc_ok(p, n, 4096));
    ut_noise(p, n, 99);
    /* a signature in the last bytes: the real descriptor follows it */
    memcpy(p + n - 6, "PK\x07\x08", 4);
    ck_assert(!desc_ok(p, n, 4096));
    free(p);
}
END_TEST

Suite *zsniff_suite(void)
{
    Suite *s = suite_create("zsniff");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_zsniff_magic_numbers);
    tcase_add_test(tc, test_zsniff_text_is_compressible);
    tcase_add_test(tc, test_zsniff_entropy);
    tcase_add_test(tc, test_zsniff_store_safe);
    tcase_add_test(tc, test_zsniff_desc_hazard);
    suite_add_tcase(s, tc);
    return s;
}
