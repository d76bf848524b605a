/*
 * The unit suites: each tests/unit/check_<module>.c defines one
 * "Suite *<module>_suite(void)" (on a line of its own, so the Makefile can
 * list it); this header declares them all.
 */
#ifndef WK_TESTS_UNIT_SUITES_H
#define WK_TESTS_UNIT_SUITES_H

#include <check.h>

#define WK_SUITE(name) Suite *name##_suite(void);
#include "unit/suites_list.h"
#undef WK_SUITE

#endif
