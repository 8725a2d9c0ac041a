/* Training-time augmentation of float batches, drawn per image from a counter-based hash. */
#ifndef FNN_DATA_AUGMENT_H
#define FNN_DATA_AUGMENT_H

#include "fnn.h"

/* 1 if any transform of c is on. */
int fnn_augment_active(const fnn_augment_config *c);

/* Team function: transforms this thread's rows (fnn_team_range(n, 1)) of x (n, channels, h, w)
 * in place, every channel plane of an image by the same transform. Image r's random draws come
 * from fnn_hash64 of seed, step and row0 + r only, so the result does not depend on the thread
 * count's split, nor on the shard: x holds rows row0.. of the step's whole batch (0 for one
 * process). scratch: (h*w) floats of this thread's own. */
void fnn_augment_batch(const fnn_augment_config *c, uint64_t seed, uint64_t step, size_t row0,
                       float *x, int n, int channels, int h, int w, float *scratch);

#endif
