/* Thread-count policy shared by training and inference. */
#include "util/team.h"
#include "util/gemm.h" /* and with it OpenBLAS's cblas.h, for openblas_set_num_threads */

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <sched.h>
#endif
#if defined(__SSE__)
#include <xmmintrin.h>
#define MXCSR_FTZ_DAZ 0x8040u
#endif

/* How long a thread spins at a barrier before it sleeps (FNN_SPIN_NS overrides, for
 * measuring). On a quiet machine a training step's waits end within a few microseconds; a
 * longer one means the thread being waited for was descheduled, and spinning on then holds a
 * core that the scheduler could give it (bench/contention.sh). */
#define SPIN_NS_DEFAULT 50000

/* Each thread's own budget in a team adapts between that cap and nothing: a wait that ends
 * asleep quarters it, one that ends spinning doubles it. On a busy machine most waits end
 * asleep, and a long spin there is worse than none: a waiter spinning on a core keeps a woken
 * partner queued behind it (the study with ten other processes on the two cores: 2.5 s
 * spinning up to 50 us, 1.4-1.9 s with no spin, FNN_SPIN_NS=0). On a quiet one waits end
 * spinning and the budget stays at its cap. */
#define SPIN_NS_MIN 1000
static _Thread_local unsigned spin_budget; /* set to the cap by fnn_team_begin */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned spin_ns(void)
{
    const char *v = getenv("FNN_SPIN_NS");
    return v ? (unsigned)strtoul(v, NULL, 10) : SPIN_NS_DEFAULT;
}

/* Sleeps while *word == expected (or returns at once if it no longer is). */
static void wait_on(atomic_uint *word, unsigned expected)
{
#if defined(__linux__)
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    (void)word;
    (void)expected;
    sched_yield();
#endif
}

static void wake_all(atomic_uint *word)
{
#if defined(__linux__)
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
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
        atomic_init(&b->sleepers, 0);
        atomic_init(&b->failed, 0);
        b->nthreads = (unsigned)omp_get_num_threads();
        b->spin_ns = omp_get_num_threads() <= omp_get_num_procs() ? spin_ns() : 0;
    }
#pragma omp barrier
    spin_budget = b->spin_ns;
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
        /* Sequentially consistent with the sleepers' count below: either this thread sees a
         * sleeper, or the sleeper sees the new generation before it sleeps. */
        atomic_store(&b->generation, gen + 1);
        if (atomic_load(&b->sleepers))
            wake_all(&b->generation);
        return;
    }
    /* Spin first, reading the clock only every 64 rounds and only once a wait is not short. */
    unsigned budget = spin_budget;
    uint64_t deadline = 0;
    for (unsigned spins = 1; atomic_load_explicit(&b->generation, memory_order_acquire) == gen;
         spins++) {
        cpu_relax();
        if (spins % 64)
            continue;
        uint64_t t = now_ns();
        if (!deadline)
            deadline = t + budget;
        else if (t >= deadline)
            break;
    }
    if (atomic_load_explicit(&b->generation, memory_order_acquire) != gen) {
        spin_budget = budget < b->spin_ns / 2 ? 2 * budget + SPIN_NS_MIN : b->spin_ns;
        return;
    }
    spin_budget = budget / 4;
    atomic_fetch_add(&b->sleepers, 1);
    while (atomic_load(&b->generation) == gen)
        wait_on(&b->generation, gen);
    atomic_fetch_sub(&b->sleepers, 1);
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
