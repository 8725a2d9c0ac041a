/* Thread-count policy shared by training and inference. */
#include "util/team.h"
#include "util/gemm.h" /* and with it OpenBLAS's cblas.h, for openblas_set_num_threads */

#include <sched.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#define MXCSR_FTZ_DAZ 0x8040u
#endif

/* Spins before the barrier starts yielding the core to other threads. */
#define SPINS_BEFORE_YIELD 20000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void fnn_team_begin(fnn_barrier *b)
{
    /* Products inside the team run on the calling thread: OpenBLAS's OpenMP flavour and oneDNN
     * read this setting, which belongs to the team's own tasks and ends with the region. */
    omp_set_num_threads(1);
#pragma omp master
    {
        atomic_init(&b->arrived, 0);
        atomic_init(&b->generation, 0);
        atomic_init(&b->failed, 0);
        b->nthreads = (unsigned)omp_get_num_threads();
        b->spins = omp_get_num_threads() <= omp_get_num_procs() ? SPINS_BEFORE_YIELD : 0;
    }
#pragma omp barrier
}

void fnn_team_end(fnn_barrier *b)
{
    if (fnn_gemm_take_failure())
        atomic_store(&b->failed, 1);
}

void fnn_team_sync(fnn_barrier *b)
{
    if (!b) {
#pragma omp barrier
        return;
    }
    if (b->nthreads <= 1)
        return;
    unsigned gen = atomic_load_explicit(&b->generation, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->nthreads - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&b->generation, gen + 1, memory_order_release);
        return;
    }
    for (unsigned spins = 0; atomic_load_explicit(&b->generation, memory_order_acquire) == gen;
         spins++) {
        if (spins < b->spins)
            cpu_relax();
        else
            sched_yield();
    }
}

int fnn_threads_resolve(int threads)
{
    return threads > 0 ? threads : omp_get_num_procs();
}

void fnn_blas_single_threaded(void)
{
#ifndef FNN_GEMM_DNNL
    if (openblas_get_num_threads() == 1)
        return;
    /* OpenBLAS's OpenMP flavour also sets the caller's OpenMP thread count; fnn names its
     * teams' sizes itself and leaves the caller's default as it was. */
    int caller = omp_get_max_threads();
    openblas_set_num_threads(1);
    omp_set_num_threads(caller);
#endif
}

unsigned fnn_denormals_flush(void)
{
#if defined(__SSE__)
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | MXCSR_FTZ_DAZ);
    return saved;
#else
    return 0;
#endif
}

void fnn_denormals_restore(unsigned saved)
{
#if defined(__SSE__)
    _mm_setcsr(saved);
#else
    (void)saved;
#endif
}
