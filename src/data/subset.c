/* Data sets made from parts of another: kept classes (transfer learning) and k-fold splits.
 * Both copy, since the images they keep are not contiguous in the source. */
#include "data/dataset.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

/* An owning set of n images of d's size, uninitialised, with nclasses classes: d's classes in
 * the given order (NULL: d's own). */
static fnn_status alloc_like(const fnn_dataset *d, int n, const int *order, int nclasses,
                             fnn_dataset *out, fnn_error *err)
{
    memset(out, 0, sizeof *out);
    size_t size = fnn_image_bytes(d);
    out->images = malloc((n ? (size_t)n : 1) * size);
    out->labels = malloc(n ? (size_t)n : 1);
    fnn_status s = out->images && out->labels
                       ? fnn_names_copy(d->class_names, order, nclasses, &out->class_names, err)
                       : fnn_fail(err, FNN_ERR_NOMEM, "data set: out of memory for %d images", n);
    if (s != FNN_OK) {
        free(out->images);
        free(out->labels);
        out->images = out->labels = NULL;
        return s;
    }
    out->n = n;
    out->c = d->c;
    out->h = d->h;
    out->w = d->w;
    out->nclasses = nclasses;
    out->owns = 1;
    memcpy(out->labels_path, d->labels_path, sizeof out->labels_path);
    return FNN_OK;
}

fnn_status fnn_dataset_select_classes(const fnn_dataset *d, const int *classes, int nclasses,
                                      int per_class, fnn_dataset *out, fnn_error *err)
{
    memset(out, 0, sizeof *out);
    if (nclasses < 1 || nclasses > FNN_MAX_CLASSES || per_class < 0)
        return fnn_fail(err, FNN_ERR_ARG, "classes: %d classes and %d per class are out of range",
                        nclasses, per_class);
    int map[256], taken[256] = {0};
    for (int i = 0; i < 256; i++)
        map[i] = -1;
    for (int i = 0; i < nclasses; i++) {
        if (classes[i] < 0 || classes[i] > 255)
            return fnn_fail(err, FNN_ERR_ARG, "classes: class %d is not a label (0..255)",
                            classes[i]);
        if (map[classes[i]] >= 0)
            return fnn_fail(err, FNN_ERR_ARG, "classes: class %d is listed twice", classes[i]);
        if (d->class_names && classes[i] >= d->nclasses)
            return fnn_fail(err, FNN_ERR_ARG, "classes: class %d is not one of the data's %d",
                            classes[i], d->nclasses);
        map[classes[i]] = i;
    }
    int n = 0;
    for (int i = 0; i < d->n; i++) {
        int c = map[d->labels[i]];
        if (c >= 0 && (!per_class || taken[c] < per_class)) {
            taken[c]++;
            n++;
        }
    }
    fnn_status s = alloc_like(d, n, classes, nclasses, out, err);
    if (s != FNN_OK)
        return s;
    size_t size = fnn_image_bytes(d);
    memset(taken, 0, sizeof taken);
    for (int i = 0, j = 0; i < d->n; i++) {
        int c = map[d->labels[i]];
        if (c < 0 || (per_class && taken[c] >= per_class))
            continue;
        taken[c]++;
        memcpy(out->images + (size_t)j * size, d->images + (size_t)i * size, size);
        out->labels[j++] = (uint8_t)c;
    }
    return FNN_OK;
}

fnn_status fnn_dataset_fold(const fnn_dataset *d, int k, int fold, fnn_dataset *train,
                            fnn_dataset *val, fnn_error *err)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (k < 2 || k > d->n || fold < 0 || fold >= k)
        return fnn_fail(err, FNN_ERR_ARG, "folds: fold %d of %d is out of range for %d images",
                        fold, k, d->n);
    int lo = (int)((int64_t)d->n * fold / k), hi = (int)((int64_t)d->n * (fold + 1) / k);
    fnn_status s = alloc_like(d, d->n - (hi - lo), NULL, d->nclasses, train, err);
    if (s != FNN_OK)
        return s;
    size_t size = fnn_image_bytes(d);
    memcpy(train->images, d->images, (size_t)lo * size);
    memcpy(train->images + (size_t)lo * size, d->images + (size_t)hi * size,
           (size_t)(d->n - hi) * size);
    memcpy(train->labels, d->labels, (size_t)lo);
    memcpy(train->labels + lo, d->labels + hi, (size_t)(d->n - hi));
    *val = fnn_dataset_view(d, lo, hi - lo);
    return FNN_OK;
}
