/* Internal to the library: sizes of a data set's images. */
#ifndef FNN_DATA_DATASET_H
#define FNN_DATA_DATASET_H

#include "fnn.h"

#include <stddef.h>

/* Bytes of one image of d: its channels' planes. */
static inline size_t fnn_image_bytes(const fnn_dataset *d)
{
    return (size_t)d->c * (size_t)d->h * (size_t)d->w;
}

/* Copies names[0..n) into *out, malloc'd (NULL names: *out is NULL). */
fnn_status fnn_names_copy(char *const *names, const int *order, int n, char ***out,
                          fnn_error *err);
void fnn_names_free(char **names, int n);

#endif
