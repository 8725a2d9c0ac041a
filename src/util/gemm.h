/* Row-major single-precision matrix products: C = alpha * op(A) op(B) + beta * C.
 * One place to route every product, so that another backend can slot in: OpenBLAS's cblas, or
 * oneDNN's sgemm when built with FNN_GEMM=dnnl (CMakeLists.txt). */
#ifndef FNN_UTIL_GEMM_H
#define FNN_UTIL_GEMM_H

#include "fnn.h"
#include "util/team.h"

#ifdef FNN_GEMM_DNNL
#include <oneapi/dnnl/dnnl.h>
#define FNN_GEMM_NAME "oneDNN"
#else
#include <cblas.h>
#define FNN_GEMM_NAME "OpenBLAS"
#endif

/* Called on the thread whose product could not run: oneDNN allocates its packing buffers per
 * call and reports running out of memory. */
void fnn_gemm_failed(void);

/* 1 if a product failed on the calling thread since the last call, which clears it;
 * fnn_team_end hands it to the thread's team. */
int fnn_gemm_take_failure(void);

static inline void fnn_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                             const float *a, int lda, const float *b, int ldb, float beta,
                             float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
#ifdef FNN_GEMM_DNNL
    if (dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                   beta, c, ldc) != dnnl_success)
        fnn_gemm_failed();
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
#endif
}

/* After a team's parallel region, whose threads each called fnn_team_end: FNN_ERR_NOMEM,
 * naming `what`, if a product failed on one of them, else FNN_OK. */
fnn_status fnn_gemm_check(const fnn_barrier *team, const char *what, fnn_error *err);

#endif
