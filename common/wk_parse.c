/* Checked parsing of numbers, sizes with units and durations, and hex
 * digits both ways; the time functions of wk_parse.h forward to wk_time. */
#include "common/wk_parse.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/wk_time.h"

enum wk_code wk_parse_u64(const char *s, uint64_t *out, struct wk_err *err)
{
    char *end = NULL;
    unsigned long long v;

    if (!s || !isdigit((unsigned char)s[0]))
        return wk_err_set(err, WK_E_INVAL, "'%s' is not a number", s ? s : "");
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return wk_err_set(err, WK_E_INVAL, "'%s' is too large", s);
    if (*end != '\0')
        return wk_err_set(err, WK_E_INVAL, "'%s' is not a number", s);
    *out = (uint64_t)v;
    return WK_OK;
}

/* Split "123abc" into the number and its suffix. */
static enum wk_code split_num(const char *s, uint64_t *num, const char **sfx,
                              struct wk_err *err)
{
    char digits[32];
    size_t n = 0;

    while (s[n] && isdigit((unsigned char)s[n]))
        n++;
    if (n == 0 || n >= sizeof(digits))
        return wk_err_set(err, WK_E_INVAL, "'%s' is not a number", s);
    memcpy(digits, s, n);
    digits[n] = '\0';
    *sfx = s + n;
    return wk_parse_u64(digits, num, err);
}

static enum wk_code mul_checked(uint64_t v, uint64_t m, const char *s,
                                uint64_t *out, struct wk_err *err)
{
    if (m && v > UINT64_MAX / m)
        return wk_err_set(err, WK_E_INVAL, "'%s' is too large", s);
    *out = v * m;
    return WK_OK;
}

struct unit {
    const char *sfx;
    uint64_t mul;
};

/* A number with one of units[0..n) as its suffix (compared ignoring case
 * when nocase); what names the kind in the error. */
static enum wk_code parse_units(const char *s, const struct unit *units,
                                size_t n, bool nocase, const char *what,
                                uint64_t *out, struct wk_err *err)
{
    uint64_t v;
    const char *sfx = NULL;
    enum wk_code rc = split_num(s ? s : "", &v, &sfx, err);

    if (rc != WK_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((nocase ? strcasecmp(sfx, units[i].sfx)
                    : strcmp(sfx, units[i].sfx)) == 0)
            return mul_checked(v, units[i].mul, s, out, err);
    return wk_err_set(err, WK_E_INVAL, "'%s': unknown %s unit", s, what);
}

enum wk_code wk_parse_size(const char *s, uint64_t *out, struct wk_err *err)
{
    static const struct unit units[] = {
        { "", 1 },
        { "b", 1 },
        { "k", 1ULL << 10 },
        { "kb", 1ULL << 10 },
        { "kib", 1ULL << 10 },
        { "m", 1ULL << 20 },
        { "mb", 1ULL << 20 },
        { "mib", 1ULL << 20 },
        { "g", 1ULL << 30 },
        { "gb", 1ULL << 30 },
        { "gib", 1ULL << 30 },
    };
    return parse_units(s, units, sizeof(units) / sizeof(units[0]), true, "size",
                       out, err);
}

enum wk_code wk_parse_duration_ms(const char *s, uint64_t *out,
                                  struct wk_err *err)
{
    static const struct unit units[] = {
        { "", 1000 },   { "ms", 1 },      { "s", 1000 },
        { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    return parse_units(s, units, sizeof(units) / sizeof(units[0]), false,
                       "duration", out, err);
}

/* The time functions below are kept for their callers; wk_time does the
 * work. */

enum wk_code wk_parse_rfc3339(const char *s, time_t *out, struct wk_err *err)
{
    return wk_time_parse_rfc3339(s, out, err);
}

void wk_fmt_rfc3339(time_t t, char *buf, size_t len)
{
    wk_time_fmt_rfc3339(t, buf, len);
}

void wk_fmt_stamp(time_t t, char *buf, size_t len)
{
    (void)wk_time_fmt_stamp(t, buf, len);
}

int wk_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void wk_hex_encode(const void *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}
