/*
 * wk_parse: checked number, size and duration parsing, hex digits. The
 * time functions here are kept for their callers and forward to wk_time.
 * Pure functions; no allocation; errors through struct wk_err.
 */
#ifndef WK_COMMON_WK_PARSE_H
#define WK_COMMON_WK_PARSE_H

#include <stdint.h>
#include <stddef.h>
#include <time.h>

#include "common/wk_err.h"

/* Value of a hex digit (either case), -1 for any other character. */
int wk_hex_digit(int c);

/* Lowercase hex of p[0..n) into out[2 * n + 1], NUL-terminated. */
void wk_hex_encode(const void *p, size_t n, char *out);

/* Decimal digits only (no sign, no spaces), must fit in uint64_t. */

enum wk_code wk_parse_u64(const char *s, uint64_t *out, struct wk_err *err);

/* A size with an optional suffix: "16777216", "16M", "16MiB", "512k", "1G". */
enum wk_code wk_parse_size(const char *s, uint64_t *out, struct wk_err *err);

/* A duration: "30" (seconds), "500ms", "30s", "5m", "2h", "7d". */
enum wk_code wk_parse_duration_ms(const char *s, uint64_t *out,
                                  struct wk_err *err);

/* "2024-01-15T10:20:30Z" or with fraction "...30.123Z" (UTC only). */
enum wk_code wk_parse_rfc3339(const char *s, time_t *out, struct wk_err *err);

/* RFC 3339 UTC, seconds precision: "2024-01-15T10:20:30Z". buf >= 21. */
void wk_fmt_rfc3339(time_t t, char *buf, size_t len);

/* Compact UTC stamp for key names: "20240115T102030Z". buf >= 17. */
void wk_fmt_stamp(time_t t, char *buf, size_t len);

#endif
