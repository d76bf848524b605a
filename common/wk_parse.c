#include "common/wk_parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

enum wk_code wk_parse_size(const char *s, uint64_t *out, struct wk_err *err)
{
    static const struct {
        const char *sfx;
        uint64_t mul;
    } units[] = {
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
    uint64_t v;
    const char *sfx;
    enum wk_code rc = split_num(s ? s : "", &v, &sfx, err);

    if (rc != WK_OK)
        return rc;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(sfx, units[i].sfx) == 0)
            return mul_checked(v, units[i].mul, s, out, err);
    return wk_err_set(err, WK_E_INVAL, "'%s': unknown size unit", s);
}

enum wk_code wk_parse_duration_ms(const char *s, uint64_t *out,
                                  struct wk_err *err)
{
    static const struct {
        const char *sfx;
        uint64_t mul;
    } units[] = {
        { "", 1000 },   { "ms", 1 },      { "s", 1000 },
        { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    uint64_t v;
    const char *sfx;
    enum wk_code rc = split_num(s ? s : "", &v, &sfx, err);

    if (rc != WK_OK)
        return rc;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(sfx, units[i].sfx) == 0)
            return mul_checked(v, units[i].mul, s, out, err);
    return wk_err_set(err, WK_E_INVAL, "'%s': unknown duration unit", s);
}

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]))
            return false;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int num_at(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

enum wk_code wk_parse_rfc3339(const char *s, time_t *out, struct wk_err *err)
{
    struct tm tm;
    const char *p;

    /* YYYY-MM-DDTHH:MM:SS */
    if (!s || strlen(s) < 20 || !all_digits(s, 4) || s[4] != '-' ||
        !all_digits(s + 5, 2) || s[7] != '-' || !all_digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !all_digits(s + 11, 2) ||
        s[13] != ':' || !all_digits(s + 14, 2) || s[16] != ':' ||
        !all_digits(s + 17, 2))
        goto bad;
    p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "z") != 0 && strcmp(p, "+00:00") != 0)
        goto bad;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = num_at(s, 4) - 1900;
    tm.tm_mon = num_at(s + 5, 2) - 1;
    tm.tm_mday = num_at(s + 8, 2);
    tm.tm_hour = num_at(s + 11, 2);
    tm.tm_min = num_at(s + 14, 2);
    tm.tm_sec = num_at(s + 17, 2);
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        goto bad;
    *out =
        (time_t)(days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) *
                     86400 +
                 tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
    return WK_OK;
bad:
    return wk_err_set(err, WK_E_INVAL, "'%.40s' is not an RFC 3339 UTC time",
                      s ? s : "");
}

void wk_fmt_rfc3339(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void wk_fmt_stamp(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
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
