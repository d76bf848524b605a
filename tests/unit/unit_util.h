/*
 * unit_util: helpers shared by unit suites. Failures abort the current
 * test (ck_assert).
 */
#ifndef WK_TESTS_UNIT_UNIT_UTIL_H
#define WK_TESTS_UNIT_UNIT_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/wk_buf.h"

/* Largest archive a hostile kind may produce. */
#define UT_ZIP_MAX_BYTES ((size_t)64 << 20)

/* Deterministic pseudo-random bytes (xorshift), as a JPEG body would be. */
void ut_noise(unsigned char *p, size_t n, unsigned seed);

/* Remove path and everything under it (no error when it is gone). */
void ut_rm_tree(const char *path);

/* Append s as one word for popen's shell ('a'\''b'), then a space. */
void ut_shell_quote(struct wk_buf *b, const char *s);

/* Run tests/make_hostile_zip.py KIND (with extra arguments, shell words)
 * and load the result into zip (initialised here, UT_ZIP_MAX_BYTES). False
 * when the script skips the kind. */
bool ut_hostile_zip(const char *kind, const char *args, struct wk_buf *zip);

#endif
