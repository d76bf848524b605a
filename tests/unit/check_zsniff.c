#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

Suite *zsniff_suite(void)
{
    Suite *s = suite_create("zsniff");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_zsniff_magic_numbers);
    tcase_add_test(tc, test_zsniff_text_is_compressible);
    tcase_add_test(tc, test_zsniff_entropy);
    suite_add_tcase(s, tc);
    return s;
}
