/* Batches: pixels scaled to [0, 1] as the study did (x / 255, in float). */
#include "data/batch.h"
#include "data/dataset.h"
#include "util/team.h"

void fnn_batch_fill(const fnn_dataset *d, const int *idx, int start, int n, float *x,
                    uint8_t *labels)
{
    size_t size = fnn_image_bytes(d), lo, hi;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        size_t src = idx ? (size_t)idx[r] : (size_t)start + r;
        const uint8_t *img = d->images + src * size;
        float *row = x + r * size;
#pragma omp simd
        for (size_t i = 0; i < size; i++)
            row[i] = (float)img[i] / 255.0f;
        if (labels)
            labels[r] = d->labels[src];
    }
}

void fnn_batch_prefetch(const fnn_dataset *d, const int *idx, int n)
{
    size_t size = fnn_image_bytes(d), lo, hi;
    fnn_team_range((size_t)n, 1, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        const uint8_t *img = d->images + (size_t)idx[r] * size;
        for (size_t off = 0; off < size; off += 64)
            __builtin_prefetch(img + off, 0, 2);
    }
}
