/* Thread-count policy shared by training and inference. */
#include "util/team.h"

#include <cblas.h>

int fnn_threads_resolve(int threads)
{
    return threads > 0 ? threads : omp_get_num_procs();
}

void fnn_blas_single_threaded(void)
{
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}
