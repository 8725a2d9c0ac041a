/* Failed products (util/gemm.h), flagged per thread, so that teams running at once in one
 * process each learn only of their own; and the name of the library behind the products. */
#include "util/gemm.h"
#include "util/error.h"

static _Thread_local int failed;

void fnn_gemm_failed(void) { failed = 1; }

int fnn_gemm_take_failure(void)
{
    int f = failed;
    failed = 0;
    return f;
}

fnn_status fnn_gemm_check(const fnn_barrier *team, const char *what, fnn_error *err)
{
    if (!atomic_load(&team->failed))
        return FNN_OK;
    return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for a matrix product's buffers",
                    what);
}

const char *fnn_gemm_library(void) { return FNN_GEMM_NAME; }
