/* The "normalization" JSON of model files and checkpoints: one writer, one reader. */
#ifndef FNN_IO_NORMALIZATION_H
#define FNN_IO_NORMALIZATION_H

#include "fnn.h"

/* {"scale": 1/255}, plus "mean" and "std" lists (c) when m normalises its input; malloc'd, or
 * NULL when out of memory. */
char *fnn_normalization_json(const fnn_model *m);

/* Reads text as written by fnn_normalization_json for a c-channel input. *set is 1 when it has
 * the lists, with mean (c) and std (c) filled. Errors name path and `what` (e.g. "metadata
 * normalization") and the field. Files without the lists read as *set = 0. */
fnn_status fnn_normalization_parse(const char *path, const char *what, const char *text, int c,
                                   float *mean, float *std, int *set, fnn_error *err);

#endif
