/*
 * wk_time: UTC time, parsed and formatted in one place: RFC 3339 (seconds
 * or milliseconds), the compact stamp of key names and SigV4, and the HTTP
 * date of Last-Modified. Built on gmtime_r, strftime and timegm; no
 * allocation, no local time zone. Errors through struct wk_err.
 */
#ifndef WK_COMMON_WK_TIME_H
#define WK_COMMON_WK_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/wk_err.h"

/* RFC 3339 UTC, seconds: "2024-01-15T10:20:30Z". buf >= 21. */
void wk_time_fmt_rfc3339(time_t t, char *buf, size_t len);

/* RFC 3339 UTC, milliseconds: "2024-01-15T10:20:30.123Z". buf >= 25. */
void wk_time_fmt_rfc3339_ms(const struct timespec *ts, char *buf, size_t len);

/* The wall clock (CLOCK_REALTIME) as wk_time_fmt_rfc3339_ms. */
void wk_time_now_rfc3339_ms(char *buf, size_t len);

/* Compact UTC stamp: "20240115T102030Z". buf >= 17. False (buf "") when
 * t has no calendar date. Four-digit years lie in [WK_TIME_YEAR0_S,
 * WK_TIME_YEAR9999_S]. */
bool wk_time_fmt_stamp(time_t t, char *buf, size_t len);

/* The first second of year 0000 and the last of year 9999. */
#define WK_TIME_YEAR0_S    (-62167219200LL)
#define WK_TIME_YEAR9999_S 253402300799LL

/* "2024-01-15T10:20:30Z", also with a fraction "...30.123Z", a lowercase
 * 't'/'z' or "+00:00" (UTC only; the fraction is dropped). */
enum wk_code wk_time_parse_rfc3339(const char *s, time_t *out,
                                   struct wk_err *err);

/* As wk_time_parse_rfc3339, in milliseconds since the epoch (the first
 * three digits of a fraction count; "...30.5Z" is 500 ms). */
enum wk_code wk_time_parse_rfc3339_ms(const char *s, int64_t *out_ms,
                                      struct wk_err *err);

/* RFC 9110 IMF-fixdate "Wed, 21 Oct 2015 07:28:00 GMT" (years from 1970)
 * into unix seconds; false when it is not one. */
bool wk_time_parse_http(const char *s, int64_t *out);

#endif
