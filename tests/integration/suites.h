/*
 * The integration suites: each tests/integration/check_it_<flow>.c defines
 * one "Suite *it_<flow>_suite(void)" (on a line of its own, so the Makefile
 * can list it); this header declares them all. They need the servers that
 * tests/integration/run.sh starts (WK_TEST_REDIS_PORT, WK_TEST_S3_ENDPOINT,
 * WK_TEST_BUCKET).
 */
#ifndef WK_TESTS_INTEGRATION_SUITES_H
#define WK_TESTS_INTEGRATION_SUITES_H

#include <check.h>

#define WK_SUITE(name) Suite *name##_suite(void);
#include "integration/suites_list.h"
#undef WK_SUITE

#endif
