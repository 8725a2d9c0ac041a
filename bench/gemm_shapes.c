/* How fast the library fnn was built with (OpenBLAS or oneDNN) runs the matrix products of the
 * two benchmarked training steps, alone and hot in cache, on one thread: median microseconds
 * and GFLOP/s per shape. Set against
 * profile_step's per-layer times, it says how much of a layer is its products and how close
 * those are to the kernel's peak. Usage: gemm_shapes [REPEATS] */
#include "util/gemm.h"
#include "util/team.h"

#include "timing.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const char *what;
    int ta, tb, m, n, k, lda, ldb, ldc, calls; /* calls: products per timing, as in the layer */
    float beta;
} shape;

/* Per thread, two threads. MLP: the first dense layer splits its 784 inputs in halves. CNN:
 * the Winograd layer (32 -> 64 channels, 14x14) multiplies a chunk of 8 images' 128 tiles
 * (by 32 channels or 64 filters) at each of 36 tile positions. First layers (im2col, one image a
 * product): the reference CNN's on 1x28x28 and bench/cifar.sh's on 3x32x32. */
static const shape shapes[] = {
    {"mlp dense 784->128, forward half", 0, 0, 32, 128, 392, 784, 128, 128, 1, 0.0f},
    {"mlp dense 784->128, kernel gradient half", 1, 0, 392, 128, 32, 784, 128, 128, 1, 0.0f},
    {"cnn winograd 32->64, forward (36 products)", 0, 0, 128, 64, 32, 32, 64, 64, 36, 0.0f},
    {"cnn winograd, kernel gradient (36 products)", 1, 0, 32, 64, 128, 32, 64, 64, 36, 1.0f},
    {"cnn winograd, input gradient (36 products)", 0, 1, 128, 32, 64, 64, 64, 32, 36, 0.0f},
    {"cnn im2col 1->32 28x28, forward", 0, 0, 32, 784, 9, 9, 784, 784, 1, 0.0f},
    {"cnn im2col 1->32, kernel gradient", 0, 1, 32, 9, 784, 784, 784, 9, 1, 1.0f},
    {"cifar im2col 3->32 32x32, forward", 0, 0, 32, 1024, 27, 27, 1024, 1024, 1, 0.0f},
    {"cifar im2col 3->32, kernel gradient", 0, 1, 32, 27, 1024, 1024, 1024, 27, 1, 1.0f},
};

/* Floats an operand of rows x cols (before transposition) spans with leading dimension ld. */
static size_t span(int trans, int rows, int cols, int ld)
{
    return trans ? (size_t)cols * ld : (size_t)rows * ld;
}

static float *filled(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return p;
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 400;
    if (repeats < 1) {
        fprintf(stderr, "gemm_shapes: REPEATS must be a positive integer\n");
        return 2;
    }
    double *t = malloc((size_t)repeats * sizeof *t);
    if (!t)
        return 1;
    /* As inside a training team: OpenBLAS's OpenMP flavour and oneDNN follow the caller's
     * thread count. */
    fnn_blas_single_threaded();
    omp_set_num_threads(1);
    printf("%-46s %10s %8s\n", FNN_GEMM_NAME " product (one thread, hot)", "median us",
           "GFLOP/s");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const shape *p = &shapes[s];
        size_t sa = span(p->ta, p->m, p->k, p->lda), sb = span(p->tb, p->k, p->n, p->ldb);
        size_t sc = (size_t)p->m * p->ldc;
        float *a = filled(sa * p->calls), *b = filled(sb * p->calls), *c = filled(sc * p->calls);
        if (!a || !b || !c) {
            fprintf(stderr, "gemm_shapes: out of memory\n");
            return 1;
        }
        for (int r = 0; r < repeats; r++) {
            double t0 = now_us();
            for (int q = 0; q < p->calls; q++)
                fnn_sgemm(p->ta, p->tb, p->m, p->n, p->k, 1.0f, a + q * sa, p->lda, b + q * sb,
                          p->ldb, p->beta, c + q * sc, p->ldc);
            t[r] = now_us() - t0;
        }
        double med = median(t, repeats), flops = 2.0 * p->m * p->n * p->k * p->calls;
        printf("%-46s %10.1f %8.1f\n", p->what, med, flops / med * 1e-3);
        free(a);
        free(b);
        free(c);
    }
    free(t);
    return 0;
}
