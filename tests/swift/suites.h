/*
 * The Swift suites: each tests/swift/check_<name>.c defines one
 * "Suite *<name>_suite(void)" (on a line of its own, so the Makefile can
 * list it). They need the servers that tests/swift/run.sh starts (Swift's
 * s3api and redis-server) and the integration helpers (it_util, it_flow).
 */
#ifndef WK_TESTS_SWIFT_SUITES_H
#define WK_TESTS_SWIFT_SUITES_H

#include <check.h>

#define WK_SUITE(name) Suite *name##_suite(void);
#include "swift/suites_list.h"
#undef WK_SUITE

#endif
