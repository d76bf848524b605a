/*
 * wk_path: the one name policy of the system. An entry name of an archive
 * and a space's key below active/<spaceId>/ are the same string, and the
 * same rules decide for both (wk_name_problem): the archive job's listing,
 * the ZIP writer, the restore, `cat` and migrate all call it, so that what
 * is archived is what restores. Also a set of names for duplicate checks
 * (wk_nameset) and a safe rendering of untrusted names for messages.
 * Pure functions, no allocation, except wk_nameset (owns its copies).
 */
#ifndef WK_COMMON_WK_PATH_H
#define WK_COMMON_WK_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest accepted name in bytes: an S3 key is at most 1024 bytes, so no
 * key under active/<spaceId>/ has a longer name. */
#define WK_NAME_MAX 1024u

/* Well-formed UTF-8: no overlong forms, no surrogates, <= U+10FFFF. */
bool wk_utf8_valid(const void *s, size_t len);

/* Why (s, len) is not a plain relative file path that every extractor
 * treats the same way, or NULL when it is: at most max bytes, no NUL,
 * valid UTF-8, not absolute, no empty, "." or ".." component (so no
 * trailing '/'), no backslash, no C0, DEL or C1 control character. The
 * reason is a static string ("'..' component", "backslash in name"). */
const char *wk_path_problem(const void *s, size_t len, size_t max);

/* The policy for entry names and space keys (the key without
 * "active/<spaceId>/"): why (s, len) is refused, or NULL when it is
 * accepted. wk_path_problem(s, len, WK_NAME_MAX): no empty, "." or ".."
 * component (so no leading, trailing or double '/'), no backslash, no NUL,
 * C0, DEL or C1 control character, valid UTF-8 (stored and compared as
 * bytes: NFC and NFD spellings are two names), at most WK_NAME_MAX bytes.
 * Nothing else: any safe name anywhere in the space (root files, dotfiles,
 * spaces, '+', '%', '~', unicode) is accepted. */
const char *wk_name_problem(const void *s, size_t len);

/* A set of names (byte strings) for the "no name twice" rule of an archive.
 * Memory: a copy of every name plus 24 bytes per slot; the caller bounds
 * the count. Release with wk_nameset_release() (also after a failure). */
struct wk_nameset {
    struct wk_nameset_slot *slot; /* owned; cap entries */
    size_t cap, n;
};

void wk_nameset_init(struct wk_nameset *set);
/* Add (s, len): 1 when added, 0 when the set already holds it, -1 when
 * memory ran out (the set is unchanged). */
int wk_nameset_add(struct wk_nameset *set, const void *s, size_t len);
bool wk_nameset_has(const struct wk_nameset *set, const void *s, size_t len);
void wk_nameset_release(struct wk_nameset *set);

/* The name for a message (messages end up in JSON logs and terminals):
 * control characters and NUL become '?', and so does every non-ASCII byte
 * unless the name is clean UTF-8; a name longer than cap - 4 bytes is cut
 * at a character boundary and ends in "...". dst has cap >= 8 bytes. */
void wk_path_shown(char *dst, size_t cap, const void *s, size_t len);

#endif
