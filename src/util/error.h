/* Filling an fnn_error: every failing library call ends with `return fnn_fail(err, ...)`. */
#ifndef FNN_UTIL_ERROR_H
#define FNN_UTIL_ERROR_H

#include "fnn.h"

#if defined(__GNUC__)
#define FNN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FNN_PRINTF(a, b)
#endif

/* Records status s and the formatted message in err (when not NULL) and returns s. */
fnn_status fnn_fail(fnn_error *err, fnn_status s, const char *fmt, ...) FNN_PRINTF(3, 4);

#endif
