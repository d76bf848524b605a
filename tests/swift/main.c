/* Swift test runner (tests/swift/run.sh): every suite, or only
 * CK_RUN_SUITE=<name>. */
#include <stdlib.h>

#include "common/wk_log.h"
#include "tests/swift/suites.h"

int main(void)
{
    SRunner *sr = srunner_create(NULL);
    int failed;

    wk_log_set_level("error");
#define WK_SUITE(name) srunner_add_suite(sr, name##_suite());
#include "swift/suites_list.h"
#undef WK_SUITE
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
