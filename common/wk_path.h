/*
 * wk_path: checks of names that become paths somewhere (ZIP entry names,
 * file names of the fs store, what `cat` reads), and a safe rendering of
 * untrusted names for messages. Pure functions, no allocation.
 */
#ifndef WK_COMMON_WK_PATH_H
#define WK_COMMON_WK_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Well-formed UTF-8: no overlong forms, no surrogates, <= U+10FFFF. */
bool wk_utf8_valid(const void *s, size_t len);

/* Why (s, len) is not a plain relative file path that every extractor
 * treats the same way, or NULL when it is: at most max bytes, no NUL,
 * valid UTF-8, not absolute, no empty, "." or ".." component (so no
 * trailing '/'), no backslash, no C0, DEL or C1 control character. The
 * reason is a static string ("'..' component", "backslash in name"). */
const char *wk_path_problem(const void *s, size_t len, size_t max);

/* The name for a message (messages end up in JSON logs and terminals):
 * control characters and NUL become '?', and so does every non-ASCII byte
 * unless the name is clean UTF-8; a name longer than cap - 4 bytes is cut
 * at a character boundary and ends in "...". dst has cap >= 8 bytes. */
void wk_path_shown(char *dst, size_t cap, const void *s, size_t len);

#endif
