/* The most floating-point work this machine's cores do: THREADS threads each running
 * independent chains of vector multiply-adds (fused where the CPU has FMA, as the build's
 * -march=native lets the compiler), nothing loaded or stored. Prints the median of 5 samples
 * in GFLOP/s (a multiply-add is 2), the roof that bench/cifar_layers.sh holds convolutions to.
 * Usage: fma_peak [THREADS] [SECONDS_PER_SAMPLE]   (defaults: 2 0.2) */
#include "timing.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __AVX512F__
#define LANES 16
#else
#define LANES 8
#endif
/* Chains per thread: enough to cover the latency of every multiply-add unit (4 cycles and 2
 * units on current x86 cores: 8 in flight), few enough to stay in registers. */
#define CHAINS 12

typedef float vec __attribute__((vector_size(LANES * sizeof(float))));

/* Runs n rounds of CHAINS multiply-adds and returns a value that depends on all of them. */
static float chains(long n)
{
    vec acc[CHAINS], m, c;
    for (int k = 0; k < LANES; k++) {
        m[k] = 0.9999f;
        c[k] = 1e-4f;
    }
    for (int i = 0; i < CHAINS; i++)
        acc[i] = m * (float)i;
    for (long r = 0; r < n; r++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++)
            acc[i] = acc[i] * m + c;
    float s = 0.0f;
    for (int i = 0; i < CHAINS; i++)
        for (int k = 0; k < LANES; k++)
            s += acc[i][k];
    return s;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double seconds = argc > 2 ? atof(argv[2]) : 0.2;
    if (threads < 1 || !(seconds > 0.0)) {
        fprintf(stderr, "usage: fma_peak [THREADS >= 1] [SECONDS_PER_SAMPLE > 0]\n");
        return 2;
    }
    /* Rounds for about `seconds` at 100 GFLOP/s a thread; the rate does not depend on it. */
    long rounds = (long)(seconds * 100e9 / (2.0 * CHAINS * LANES));
    double rate[5];
    volatile float sink = 0.0f;
    for (int s = 0; s < 5; s++) {
        double t0 = 0.0, t1 = 0.0;
#pragma omp parallel num_threads(threads)
        {
#pragma omp barrier
#pragma omp master
            t0 = now_us();
            float v = chains(rounds);
#pragma omp atomic
            sink += v;
#pragma omp barrier
#pragma omp master
            t1 = now_us();
        }
        rate[s] = 2.0 * CHAINS * LANES * (double)rounds * threads / (t1 - t0) / 1e3;
    }
    double med = median(rate, 5);
#ifdef __FMA__
    const char *fma = "fused";
#else
    const char *fma = "unfused";
#endif
    printf("{\"threads\":%d,\"lanes\":%d,\"multiply_add\":\"%s\",\"gflops\":%.1f,"
           "\"gflops_range\":[%.1f,%.1f]}\n",
           threads, LANES, fma, med, rate[0], rate[4]);
    return 0;
}
