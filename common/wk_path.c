#include "common/wk_path.h"

#include <stdint.h>
#include <string.h>

bool wk_utf8_valid(const void *p, size_t len)
{
    const unsigned char *s = p;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += n + 1;
    }
    return true;
}

const char *wk_path_problem(const void *p, size_t len, size_t max)
{
    const unsigned char *s = p;
    size_t seg = 0;

    if (len == 0)
        return "empty name";
    if (len > max)
        return "name too long";
    if (memchr(s, '\0', len))
        return "NUL byte in name";
    if (!wk_utf8_valid(s, len))
        return "name is not valid UTF-8";
    if (s[0] == '/')
        return "absolute path";
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            size_t n = i - seg;
            if (n == 0)
                return i == len ? "trailing '/'" : "empty component";
            if (n == 1 && s[seg] == '.')
                return "'.' component";
            if (n == 2 && s[seg] == '.' && s[seg + 1] == '.')
                return "'..' component";
            seg = i + 1;
        } else if (s[i] == '\\') {
            return "backslash in name";
        } else if (s[i] < 0x20 || s[i] == 0x7f ||
                   (s[i] == 0xc2 && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)) {
            /* C0, DEL, and C1 (U+0080..U+009F; valid UTF-8, so
             * i + 1 < len) */
            return "control character in name";
        }
    }
    return NULL;
}

void wk_path_shown(char *dst, size_t cap, const void *p, size_t len)
{
    const unsigned char *s = p;
    bool clean = wk_utf8_valid(s, len);
    size_t n = len;

    if (n > cap - 4) {
        n = cap - 4;
        while (clean && n > 0 && (s[n] & 0xc0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        dst[i] =
            (c < 0x20 || c == 0x7f || (!clean && c >= 0x80)) ? '?' : (char)c;
    }
    if (n < len)
        memcpy(dst + n, "...", 4);
    else
        dst[n] = '\0';
}
