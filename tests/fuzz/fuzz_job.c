/* libFuzzer target: job specs as they arrive on the queue. */
#include <stddef.h>
#include <stdint.h>

#include "jobs/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job j;
    struct wk_err err;

    wk_err_clear(&err);
    (void)job_parse((const char *)data, size, &j, &err);
    return 0;
}
