/* Turning stored uint8 images into float batches. */
#ifndef FNN_DATA_BATCH_H
#define FNN_DATA_BATCH_H

#include "fnn.h"

/* Team function: x (n, c*h*w) = images idx[0..n) / 255, or images start..start+n when idx is
 * NULL. labels (n) receives their labels when not NULL. */
void fnn_batch_fill(const fnn_dataset *d, const int *idx, int start, int n, float *x,
                    uint8_t *labels);

/* Team function: asks the caches for the images of a coming batch, whose rows are scattered
 * over a data set larger than the last-level cache. */
void fnn_batch_prefetch(const fnn_dataset *d, const int *idx, int n);

#endif
