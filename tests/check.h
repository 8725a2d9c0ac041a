/* Comparisons shared by the tests: largest magnitudes, relative error against a double
 * reference, and an error message's contents. Include it after cmocka.h and fnn.h.
 * Static inline, so that a test uses what it needs without unused-function warnings. */
#ifndef FNN_TESTS_CHECK_H
#define FNN_TESTS_CHECK_H

#include <math.h>
#include <stddef.h>
#include <string.h>

static inline double max_abs_d(const double *a, size_t n)
{
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(a[i]));
    return mx;
}

static inline double max_abs_f(const float *a, size_t n)
{
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs((double)a[i]));
    return mx;
}

/* max|a - b| / max(max|b|, 1e-6); NaN anywhere gives NaN, which fails every "<". */
static inline double rel_err(const float *a, const double *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (isnan(e))
            return NAN;
        d = fmax(d, e);
    }
    return d / fmax(max_abs_d(b, n), 1e-6);
}

/* Fails unless err's message contains part. */
static inline void assert_msg_has(const fnn_error *err, const char *part)
{
    if (!strstr(err->msg, part))
        fail_msg("message \"%s\" does not contain \"%s\"", err->msg, part);
}

#endif
