/* Row-major single-precision matrix products: C = alpha * op(A) op(B) + beta * C.
 * One place to route every product, so that another backend can slot in. */
#ifndef FNN_UTIL_GEMM_H
#define FNN_UTIL_GEMM_H

#include <cblas.h>

static inline void fnn_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                             const float *a, int lda, const float *b, int ldb, float beta,
                             float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

#endif
