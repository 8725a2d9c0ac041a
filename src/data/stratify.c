/* The stratified, seeded validation split for data sets without an order of their own (image
 * folders, CSV files): every class in proportion in both parts, as scikit-learn's
 * train_test_split(stratify=...) gives, at Keras's sizes so that fnn_dataset_split cuts it. */
#include "data/dataset.h"
#include "util/error.h"
#include "util/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fisher-Yates over v[0..n). */
static void shuffle(int *v, int n, fnn_rng *r)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)fnn_rng_below(r, (uint32_t)i + 1);
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

fnn_status fnn_dataset_stratify(fnn_dataset *d, double fraction, uint64_t seed, fnn_error *err)
{
    if (!d)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_dataset_stratify: NULL data set");
    if (!d->owns)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_dataset_stratify: the data set is a view; it "
                        "must own its memory to be reordered");
    if (!(fraction >= 0.0 && fraction < 1.0))
        return fnn_fail(err, FNN_ERR_ARG, "validation fraction %g: expected a value in [0, 1)",
                        fraction);
    int n = d->n;
    /* fnn_dataset_split's cut, so that the two agree on the sizes. */
    long nval = n - (long)floor((double)n * (1.0 - fraction));
    int count[256] = {0}, quota[256], taken[256] = {0};
    long rem[256];
    for (int i = 0; i < n; i++)
        count[d->labels[i]]++;
    /* Largest remainders: each class's exact share count * nval / n rounded down, then one
     * more to the classes with the largest fractional parts (the lower class on ties). */
    long given = 0;
    for (int k = 0; k < 256; k++) {
        quota[k] = n ? (int)((long long)count[k] * nval / n) : 0;
        rem[k] = n ? (long)((long long)count[k] * nval % n) : 0;
        given += quota[k];
    }
    for (; given < nval; given++) {
        int best = -1;
        for (int k = 0; k < 256; k++)
            if (rem[k] > 0 && (best < 0 || rem[k] > rem[best]))
                best = k;
        quota[best]++;
        rem[best] = 0;
    }
    int *order = malloc((n ? (size_t)n : 1) * sizeof *order); // (n) index of each new place
    uint8_t *images = malloc(n ? (size_t)n * fnn_image_bytes(d) : 1); // (n, c, h, w)
    uint8_t *labels = malloc(n ? (size_t)n : 1);                      // (n)
    if (!order || !images || !labels) {
        free(order);
        free(images);
        free(labels);
        return fnn_fail(err, FNN_ERR_NOMEM, "stratified split: out of memory for %d images", n);
    }
    /* A seeded shuffle of all images, then each image goes to validation while its class's
     * quota lasts: a seeded choice within each class, and a seeded order in each part. */
    fnn_rng r;
    fnn_rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        order[i] = i;
    shuffle(order, n, &r);
    int *pos = malloc((n ? (size_t)n : 1) * sizeof *pos);
    if (!pos) {
        free(order);
        free(images);
        free(labels);
        return fnn_fail(err, FNN_ERR_NOMEM, "stratified split: out of memory for %d images", n);
    }
    int t = 0, v = n - (int)nval;
    for (int i = 0; i < n; i++) {
        int k = d->labels[order[i]];
        pos[i] = taken[k] < quota[k] ? v++ : t++;
        taken[k] += taken[k] < quota[k];
    }
    size_t bytes = fnn_image_bytes(d);
    for (int i = 0; i < n; i++) {
        memcpy(images + (size_t)pos[i] * bytes, d->images + (size_t)order[i] * bytes, bytes);
        labels[pos[i]] = d->labels[order[i]];
    }
    free(pos);
    free(order);
    free(d->images);
    free(d->labels);
    d->images = images;
    d->labels = labels;
    return FNN_OK;
}
