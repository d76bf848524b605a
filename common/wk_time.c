/* UTC time parsing and formatting (see wk_time.h): RFC 3339, the compact
 * stamp and the HTTP date, on gmtime_r, strftime and timegm. */
#define _DEFAULT_SOURCE /* timegm; the build is POSIX.1-2008 otherwise */

#include "common/wk_time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Formats are "%04Y": years below 1000 stay four digits wide. A time
 * without a calendar date (gmtime_r fails) formats as "". Results are
 * truncated to the caller's buffer like snprintf. */

void wk_time_fmt_rfc3339(time_t t, char *buf, size_t len)
{
    char tmp[64];
    struct tm tm;

    if (!gmtime_r(&t, &tm) ||
        strftime(tmp, sizeof(tmp), "%04Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        tmp[0] = '\0';
    snprintf(buf, len, "%s", tmp);
}

void wk_time_fmt_rfc3339_ms(const struct timespec *ts, char *buf, size_t len)
{
    char tmp[64];
    struct tm tm;

    if (!gmtime_r(&ts->tv_sec, &tm) ||
        strftime(tmp, sizeof(tmp), "%04Y-%m-%dT%H:%M:%S", &tm) == 0)
        tmp[0] = '\0';
    snprintf(buf, len, "%s.%03dZ", tmp, (int)(ts->tv_nsec / 1000000L));
}

void wk_time_now_rfc3339_ms(char *buf, size_t len)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    wk_time_fmt_rfc3339_ms(&ts, buf, len);
}

bool wk_time_fmt_stamp(time_t t, char *buf, size_t len)
{
    char tmp[64];
    struct tm tm;

    if (!gmtime_r(&t, &tm) ||
        strftime(tmp, sizeof(tmp), "%04Y%m%dT%H%M%SZ", &tm) == 0) {
        if (len)
            buf[0] = '\0';
        return false;
    }
    snprintf(buf, len, "%s", tmp);
    return true;
}

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]))
            return false;
    return true;
}

static int num_at(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

enum wk_code wk_time_parse_rfc3339(const char *s, time_t *out,
                                   struct wk_err *err)
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
    /* a day past the month's end (Feb 30) or second 60 roll over */
    *out = timegm(&tm);
    return WK_OK;
bad:
    return wk_err_set(err, WK_E_INVAL, "'%.40s' is not an RFC 3339 UTC time",
                      s ? s : "");
}

enum wk_code wk_time_parse_rfc3339_ms(const char *s, int64_t *out_ms,
                                      struct wk_err *err)
{
    time_t t;
    int64_t ms = 0;
    enum wk_code rc = wk_time_parse_rfc3339(s, &t, err);

    if (rc != WK_OK)
        return rc;
    if (s[19] == '.') {
        /* the first three digits of the fraction; fewer are scaled */
        int scale = 100;
        for (const char *p = s + 20; isdigit((unsigned char)*p) && scale;
             p++, scale /= 10)
            ms += (int64_t)(*p - '0') * scale;
    }
    *out_ms = (int64_t)t * 1000 + ms;
    return WK_OK;
}

bool wk_time_parse_http(const char *s, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char wd[4], mon[4];
    int d, y, hh, mm, ss;
    const char *m;
    struct tm tm;

    if (sscanf(s, "%3s, %d %3s %d %d:%d:%d", wd, &d, mon, &y, &hh, &mm, &ss) !=
        7)
        return false;
    m = strstr(months, mon);
    if (!m || strlen(mon) != 3 || (m - months) % 3 != 0 || d < 1 || d > 31 ||
        y < 1970 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
        return false;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = (int)((m - months) / 3);
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    *out = (int64_t)timegm(&tm);
    return true;
}
