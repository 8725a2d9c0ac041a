/* Work sharing inside an OpenMP team. "Team functions" are called by every thread of the
 * enclosing parallel region (or outside one, by a single thread); each takes its share. */
#ifndef FNN_UTIL_TEAM_H
#define FNN_UTIL_TEAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <omp.h>

/* A spinning barrier for one team. libgomp's takes about 1.5 us on this project's machine and
 * a training step needs a dozen; this one takes a cache-line round trip (about 0.3 us). A wait
 * that outlasts a bounded spin (at most 50 us, less on a thread whose waits keep ending asleep;
 * the environment's FNN_SPIN_NS, in nanoseconds, overrides the 50) sleeps on a futex until the
 * last thread arrives: the thread waited for has then lost its core to another process, and a
 * spinning or yielding waiter would keep the core it could run on. With `yes` holding one of two cores, the study's two threads took 6 s (yielding) where
 * one took 3.3 s (bench/contention.sh). */
typedef struct {
    _Alignas(64) atomic_uint arrived;
    _Alignas(64) atomic_uint generation;
    atomic_uint sleepers; /* threads asleep on generation, or about to be */
    unsigned nthreads;
    unsigned spin_ns;  /* busy-wait before sleeping; none when threads outnumber cores */
    atomic_int failed; /* set by fnn_team_end: a product failed on a thread (util/gemm.h) */
} fnn_barrier;

/* Called by every thread at the start of a parallel region: sizes b for the team. */
void fnn_team_begin(fnn_barrier *b);

/* Called by every thread at the end of the region: reports a failed product of the thread's to
 * the team, for fnn_gemm_check once the region is over. */
void fnn_team_end(fnn_barrier *b);

/* Waits for the whole team at b; a NULL b means the enclosing OpenMP team's own barrier. */
void fnn_team_sync(fnn_barrier *b);

/* This thread's share [*lo, *hi) of [0, n), cut at multiples of `align` so that vector loops
 * start aligned; a thread may get an empty range. */
static inline void fnn_team_range(size_t n, size_t align, size_t *lo, size_t *hi)
{
    size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
    size_t chunks = (n + align - 1) / align;
    size_t a = chunks * t / nt, b = chunks * (t + 1) / nt;
    *lo = a * align < n ? a * align : n;
    *hi = b * align < n ? b * align : n;
}

/* Flushes denormal floats to zero on the calling thread and returns the previous setting, to
 * hand back to fnn_denormals_restore. Adam's moments of weights whose gradient stays zero
 * (border pixels, dead units) decay into denormals, which cost this CPU a microcode assist per
 * operation; TensorFlow, which ran the study, trains with them flushed as well. */
unsigned fnn_denormals_flush(void);
void fnn_denormals_restore(unsigned saved);

/* This thread's rows [*lo, *hi) of a parameter tensor's first dimension. The layers' backward
 * passes write gradients in these shares and the optimizer updates the same ones, so each
 * thread keeps its rows in its cache; runs of 8 rows split 784 evenly between two threads. */
static inline void fnn_team_param_rows(size_t rows, size_t *lo, size_t *hi)
{
    fnn_team_range(rows, 8, lo, hi);
}

/* The number of threads a call asks for: 0 means every core. */
int fnn_threads_resolve(int threads);

/* Keeps OpenBLAS to the calling thread: fnn parallelises around its calls, and two thread
 * pools on the same cores spin against each other. This is process-wide: other users of
 * OpenBLAS in the process then run single-threaded too. oneDNN needs nothing: it follows
 * OpenMP's thread count, which fnn_team_begin sets to one inside a team. */
void fnn_blas_single_threaded(void);

#endif
