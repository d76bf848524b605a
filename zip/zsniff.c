/* zsniff: store or deflate, by magic numbers and a sample's entropy, and
 * the scan for a data-descriptor signature inside stored data (see zsniff.h).
 */
#include "zip/zsniff.h"

#include "zip/zip_fmt.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

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

bool zsniff_store_safe(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i + 4 <= n; i++) {
        const unsigned char *q = memchr(b + i, 'P', n - i - 3);
        if (!q)
            return true;
        i = (size_t)(q - b);
        if (q[1] == 'K' && q[2] == 7 && q[3] == 8)
            return false;
    }
    return true;
}

void zsniff_desc_init(struct zsniff_desc *d)
{
    memset(d, 0, sizeof(*d));
    d->crc = crc32(0L, Z_NULL, 0);
}

static bool is_sig(const unsigned char *p)
{
    return p[0] == 'P' && p[1] == 'K' && p[2] == 7 && p[3] == 8;
}

/* Judge w[0..nw) (d->crc covers what precedes w), all but its last 7
 * bytes, then keep those as the new tail. */
static bool judge(struct zsniff_desc *d, const unsigned char *w, size_t nw)
{
    size_t done = nw > 7 ? nw - 7 : 0; /* starts judged now: [0, done) */
    size_t from = 0;                   /* CRC covers w[0, from) */
    unsigned long crc = d->crc;

    for (size_t s = 0; s < done; s++) {
        const unsigned char *q;
        if (w[s] != 'P') {
            q = memchr(w + s, 'P', done - s);
            if (!q)
                break;
            s = (size_t)(q - w);
        }
        if (is_sig(w + s)) {
            crc = crc32(crc, w + from, (uInt)(s - from));
            from = s;
            if (zip_le32(w + s + 4) == (uint32_t)crc)
                return false;
        }
    }
    d->crc = crc32(crc, w + from, (uInt)(done - from));
    d->ntail = nw - done;
    memcpy(d->tail, w + done, d->ntail);
    return true;
}

bool zsniff_desc_feed(struct zsniff_desc *d, const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned char w[14];
    size_t head = n < 7 ? n : 7;

    /* the seam: starts in the old tail, with up to 7 new bytes after */
    memcpy(w, d->tail, d->ntail);
    memcpy(w + d->ntail, b, head);
    if (n <= 7)
        return judge(d, w, d->ntail + head);
    {
        size_t nw = d->ntail + head, done = nw > 7 ? nw - 7 : 0;
        unsigned long crc = d->crc;
        for (size_t s = 0; s < done && s < d->ntail; s++)
            if (is_sig(w + s) &&
                zip_le32(w + s + 4) == (uint32_t)crc32(crc, w, (uInt)s))
                return false;
        d->crc = crc32(crc, w, (uInt)d->ntail);
    }
    /* then the new bytes, from their start */
    d->ntail = 0;
    return judge(d, b, n);
}

bool zsniff_desc_end(const struct zsniff_desc *d)
{
    for (size_t s = 0; s + 4 <= d->ntail; s++)
        if (is_sig(d->tail + s))
            return false;
    /* a signature cut by the end ("PK\7" + the descriptor's "\x08"...) is
     * no signature of the data: the descriptor's own follows at once */
    return true;
}
