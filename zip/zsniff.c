/* zsniff: store or deflate, by magic numbers and a sample's entropy (see
 * zsniff.h). */
#include "zip/zsniff.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

struct magic {
    const char *name;
    size_t off; /* where the bytes are */
    size_t len;
    const char *bytes;
};

/* Formats whose content is compressed (or encrypted) as a whole. */
static const struct magic magics[] = {
    { "jpeg", 0, 3, "\xff\xd8\xff" },
    { "png", 0, 8, "\x89PNG\r\n\x1a\n" },
    { "gif", 0, 4, "GIF8" },
    { "webp", 8, 4, "WEBP" },      /* after "RIFF" and a size */
    { "mp4", 4, 4, "ftyp" },       /* MP4, MOV, HEIC, AVIF, M4A, 3GP */
    { "zip", 0, 4, "PK\x03\x04" }, /* also DOCX, XLSX, EPUB, JAR, APK */
    { "gzip", 0, 2, "\x1f\x8b" },
    { "zstd", 0, 4, "\x28\xb5\x2f\xfd" },
    { "bzip2", 0, 3, "BZh" },
    { "xz", 0, 6,
      "\xfd"
      "7zXZ\x00" },
    { "7z", 0, 6, "7z\xbc\xaf\x27\x1c" },
    { "rar", 0, 6, "Rar!\x1a\x07" },
    { "pdf", 0, 5, "%PDF-" },
    { "mp3", 0, 3, "ID3" },
    { "ogg", 0, 4, "OggS" },
    { "flac", 0, 4, "fLaC" },
    { "matroska", 0, 4, "\x1a\x45\xdf\xa3" }, /* MKV, WebM */
    { "woff2", 0, 4, "wOF2" },
    { "lz4", 0, 4, "\x04\x22\x4d\x18" },
};

/* Shannon entropy in bits per byte of p[0..n). */
static double entropy(const unsigned char *p, size_t n)
{
    unsigned counts[256] = { 0 };
    double h = 0;

    for (size_t i = 0; i < n; i++)
        counts[p[i]]++;
    for (unsigned c = 0; c < 256; c++) {
        if (counts[c]) {
            double f = (double)counts[c] / (double)n;
            h -= f * log2(f);
        }
    }
    return h;
}

bool zsniff_compressed(const void *p, size_t n, const char **why)
{
    const unsigned char *b = p;
    size_t s = n < ZSNIFF_SAMPLE ? n : ZSNIFF_SAMPLE;

    for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
        const struct magic *m = &magics[i];
        if (n >= m->off + m->len && memcmp(b + m->off, m->bytes, m->len) == 0) {
            if (why)
                *why = m->name;
            return true;
        }
    }
    /* Random bytes of a 4 KiB sample measure ~7.95 bits; text, JSON and
     * base64 stay below 6.1. Below 256 bytes the estimate means little. */
    if (s >= 256 && entropy(b, s) > 7.5) {
        if (why)
            *why = "entropy";
        return true;
    }
    return false;
}
