/* wk_path: the one name policy (wk_name_problem), the set of names seen
 * (wk_nameset) and names shown safely in messages (see wk_path.h). */
#include "common/wk_path.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct wk_nameset_slot {
    char *name; /* owned; NULL: free slot */
    size_t len;
    uint64_t hash;
};

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

const char *wk_name_problem(const void *s, size_t len)
{
    return wk_path_problem(s, len, WK_NAME_MAX);
}

/* FNV-1a, 64 bits: names are ours to bound, not an attacker's hash
 * flooding target (a set holds at most one archive's entries). */
static uint64_t name_hash(const unsigned char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void wk_nameset_init(struct wk_nameset *set)
{
    memset(set, 0, sizeof(*set));
}

static struct wk_nameset_slot *slot_find(struct wk_nameset_slot *v, size_t cap,
                                         const void *s, size_t len, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);

    for (;;) {
        struct wk_nameset_slot *e = &v[i];
        if (!e->name ||
            (e->hash == h && e->len == len && memcmp(e->name, s, len) == 0))
            return e;
        i = (i + 1) & (cap - 1);
    }
}

bool wk_nameset_has(const struct wk_nameset *set, const void *s, size_t len)
{
    if (set->cap == 0)
        return false;
    return slot_find(set->slot, set->cap, s, len, name_hash(s, len))->name !=
           NULL;
}

int wk_nameset_add(struct wk_nameset *set, const void *s, size_t len)
{
    uint64_t h = name_hash(s, len);
    struct wk_nameset_slot *e;
    char *copy;

    if ((set->n + 1) * 4 > set->cap * 3) { /* load <= 3/4 */
        size_t ncap = set->cap ? set->cap * 2 : 64;
        struct wk_nameset_slot *nv;
        if (ncap > SIZE_MAX / sizeof(*nv))
            return -1;
        nv = calloc(ncap, sizeof(*nv));
        if (!nv)
            return -1;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i].name)
                *slot_find(nv, ncap, set->slot[i].name, set->slot[i].len,
                           set->slot[i].hash) = set->slot[i];
        free(set->slot);
        set->slot = nv;
        set->cap = ncap;
    }
    e = slot_find(set->slot, set->cap, s, len, h);
    if (e->name)
        return 0;
    copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    e->name = copy;
    e->len = len;
    e->hash = h;
    set->n++;
    return 1;
}

void wk_nameset_release(struct wk_nameset *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i].name);
    free(set->slot);
    memset(set, 0, sizeof(*set));
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
