/* Seconds on a clock as a double: CLOCK_MONOTONIC for durations, CLOCK_PROCESS_CPUTIME_ID for
 * the work this process did. */
#ifndef FNN_UTIL_CLOCK_H
#define FNN_UTIL_CLOCK_H

#include <time.h>

static inline double fnn_clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds on the monotonic clock. */
static inline double fnn_now_s(void)
{
    return fnn_clock_s(CLOCK_MONOTONIC);
}

#endif
