/* Work sharing inside an OpenMP team. "Team functions" are called by every thread of the
 * enclosing parallel region (or outside one, by a single thread); each takes its share. */
#ifndef FNN_UTIL_TEAM_H
#define FNN_UTIL_TEAM_H

#include <stddef.h>
#include <omp.h>

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

/* The number of threads a call asks for: 0 means every core. */
int fnn_threads_resolve(int threads);

/* Keeps OpenBLAS to the calling thread: fnn parallelises around its calls, and two thread
 * pools on the same cores spin against each other. */
void fnn_blas_single_threaded(void);

#endif
