/* The products' failure flag (util/gemm.h), set by whichever thread's product failed and read
 * once the team has finished, and the name of the library behind them. */
#include "util/gemm.h"
#include "util/error.h"

#include <stdatomic.h>

static atomic_int failed;

void fnn_gemm_failed(void) { atomic_store(&failed, 1); }

const char *fnn_gemm_library(void) { return FNN_GEMM_NAME; }

fnn_status fnn_gemm_check(const char *what, fnn_error *err)
{
    if (!atomic_exchange(&failed, 0))
        return FNN_OK;
    return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for a matrix product's buffers",
                    what);
}
