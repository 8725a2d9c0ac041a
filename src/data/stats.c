/* Per-channel statistics of a data set's pixels, for the model's input normalisation. */
#include "data/dataset.h"
#include "util/error.h"
#include "util/team.h"

#include <math.h>
#include <stdlib.h>

fnn_status fnn_dataset_channel_stats(const fnn_dataset *d, double *mean, double *std,
                                     int threads, fnn_error *err)
{
    if (d->n <= 0)
        return fnn_fail(err, FNN_ERR_ARG, "channel statistics: the data set is empty");
    int c = d->c, nt = fnn_threads_resolve(threads);
    size_t plane = (size_t)d->h * d->w, size = fnn_image_bytes(d);
    /* Integer sums are exact, so the result does not depend on the thread count. Each thread
     * sums in 64 bits (squares overflow only past 2^64 / 255^2, about 2.8e14 pixels of one
     * channel); the totals are added up in 128. */
    uint64_t *sum = calloc((size_t)nt * c, sizeof *sum);   /* (nt, c) */
    uint64_t *sq = calloc((size_t)nt * c, sizeof *sq);     /* (nt, c) */
    if (!sum || !sq) {
        free(sum);
        free(sq);
        return fnn_fail(err, FNN_ERR_NOMEM, "channel statistics: out of memory");
    }
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        fnn_team_range((size_t)d->n, 1, &lo, &hi);
        uint64_t *s = sum + (size_t)omp_get_thread_num() * c;
        uint64_t *q = sq + (size_t)omp_get_thread_num() * c;
        for (size_t i = lo; i < hi; i++)
            for (int ch = 0; ch < c; ch++) {
                const uint8_t *p = d->images + i * size + (size_t)ch * plane;
                uint64_t a = 0, b = 0;
                for (size_t j = 0; j < plane; j++) {
                    a += p[j];
                    b += (uint64_t)p[j] * p[j];
                }
                s[ch] += a;
                q[ch] += b;
            }
    }
    double count = (double)d->n * (double)plane;
    for (int ch = 0; ch < c; ch++) {
        unsigned __int128 s = 0, q = 0;
        for (int t = 0; t < nt; t++) {
            s += sum[(size_t)t * c + ch];
            q += sq[(size_t)t * c + ch];
        }
        /* Population variance (Keras's adapt), in pixel units: (N q - s^2) / N^2, exact in
         * integers before the one division. */
        unsigned __int128 pixels = (unsigned __int128)d->n * plane;
        double var = (double)(pixels * q - s * s) / (count * count);
        mean[ch] = (double)s / count / 255.0;
        std[ch] = sqrt(var) / 255.0;
        /* A constant channel would divide by zero; by 1 it is only shifted to zero. */
        if (!(std[ch] > 0.0))
            std[ch] = 1.0;
    }
    free(sum);
    free(sq);
    return FNN_OK;
}
