/*
 * wk_fail: named failpoints, for the tests that break a worker at an exact
 * step (kill -9 there, or pause it there past its lease and wake it later).
 *
 *   SILA_FAILPOINTS="archive.uploaded=stop,archive.delete_batch=stop@2"
 *
 * Each entry is name=action[@n]: the action fires on the n-th time (default:
 * the first) the process passes wk_fail_point(name), and only that once;
 * "@n+" fires on the n-th pass and every one after it (a slow step).
 * Actions: "stop" raises SIGSTOP (the test resumes the process with
 * SIGCONT), "kill" raises SIGKILL, "sleep:<ms>" sleeps. A line
 * "failpoint.hit" is logged before the action. Unset (production): every
 * call is one relaxed load. Test-only: docs/OPERATIONS.md lists the names.
 */
#ifndef WK_COMMON_WK_FAIL_H
#define WK_COMMON_WK_FAIL_H

/* Pass the failpoint called name (a static string). Thread-safe. */
void wk_fail_point(const char *name);

#endif
