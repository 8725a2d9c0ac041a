/* Data sets in memory: finding the Fashion-MNIST files in a directory, views, the Keras
 * validation split, and the class names. */
#define _POSIX_C_SOURCE 200809L

#include "data/dataset.h"
#include "data/idx.h"
#include "util/error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_CAP 4096

/* Writes into path the first candidate for "<dir>/<which>-<kind>" that exists; on failure the
 * error names the first candidate tried. */
static fnn_status find_file(const char *dir, const char *which, const char *kind, int idx_dims,
                            char *path, fnn_error *err)
{
    char first[PATH_CAP];
    size_t len = strlen(dir);
    const char *sep = len == 0 ? "./" : dir[len - 1] == '/' ? "" : "/";
    /* The original site's "-idx3-ubyte", then some mirrors' ".idx3-ubyte"; each plain before
     * gzipped, since someone who unpacked the file wants that copy read. */
    for (int i = 0; i < 4; i++) {
        const char *spelling = i < 2 ? "-" : ".";
        const char *gz = i % 2 ? ".gz" : "";
        int n = snprintf(path, PATH_CAP, "%s%s%s-%s%sidx%d-ubyte%s", dir, sep, which, kind,
                         spelling, idx_dims, gz);
        if (n < 0 || n >= PATH_CAP)
            return fnn_fail(err, FNN_ERR_ARG, "%s: data directory path too long", dir);
        if (i == 0)
            memcpy(first, path, (size_t)n + 1);
        /* Anything but "absent" (no permission, say) is left for the loader to report. */
        if (access(path, F_OK) == 0 || (errno != ENOENT && errno != ENOTDIR))
            return FNN_OK;
    }
    return fnn_fail(err, FNN_ERR_IO,
                    "%s: no such file (nor with .gz, nor spelled .idx%d-ubyte); " FNN_DATA_HINT,
                    first, idx_dims);
}

fnn_status fnn_dataset_files(const char *dir, const char *which, char *paths[8], int *n,
                             fnn_error *err)
{
    *n = 0;
    if (!dir || !which)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_dataset_files: NULL argument");
    size_t len = strlen(dir);
    const char *sep = len == 0 ? "./" : dir[len - 1] == '/' ? "" : "/";
    char path[PATH_CAP];
    /* find_file's four spellings of each, all of them: the copy not read is the user's too. */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++) {
            int m = snprintf(path, PATH_CAP, "%s%s%s-%s%sidx%d-ubyte%s", dir, sep, which,
                             k ? "labels" : "images", i < 2 ? "-" : ".", k ? 1 : 3,
                             i % 2 ? ".gz" : "");
            if (m < 0 || m >= PATH_CAP || access(path, F_OK) != 0)
                continue;
            if (!(paths[*n] = strdup(path))) {
                while (*n > 0)
                    free(paths[--*n]);
                return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", dir);
            }
            ++*n;
        }
    return FNN_OK;
}

fnn_status fnn_dataset_load(const char *dir, const char *which, fnn_dataset *out, fnn_error *err)
{
    if (!dir || !which || !out)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_dataset_load: NULL argument");
    memset(out, 0, sizeof *out);
    if (strcmp(which, "train") != 0 && strcmp(which, "t10k") != 0)
        return fnn_fail(err, FNN_ERR_ARG, "data set \"%s\": expected \"train\" or \"t10k\"",
                        which);
    char images[PATH_CAP], labels[PATH_CAP];
    fnn_status st = find_file(dir, which, "images", 3, images, err);
    if (st == FNN_OK)
        st = find_file(dir, which, "labels", 1, labels, err);
    if (st != FNN_OK)
        return st;
    return fnn_idx_load(images, labels, out, err);
}

void fnn_dataset_free(fnn_dataset *d)
{
    if (!d)
        return;
    if (d->owns) {
        free(d->images);
        free(d->labels);
        fnn_names_free(d->class_names, d->nclasses);
    }
    memset(d, 0, sizeof *d);
}

/* A range outside d gives an empty view (n = 0, NULL pointers): there is no error channel,
 * and NULL makes misuse fail loudly instead of reading a neighbour's memory. */
fnn_dataset fnn_dataset_view(const fnn_dataset *d, int start, int count)
{
    fnn_dataset v;
    memset(&v, 0, sizeof v);
    if (!d)
        return v;
    v.c = d->c;
    v.h = d->h;
    v.w = d->w;
    v.nclasses = d->nclasses;
    v.class_names = d->class_names;
    if (start < 0 || count < 0 || start > d->n || count > d->n - start)
        return v;
    v.n = count;
    v.images = d->images + (size_t)start * fnn_image_bytes(d);
    v.labels = d->labels + start;
    return v;
}

/* Keras computes split_at = floor(n * (1 - fraction)) in double precision; doing the same
 * arithmetic gives the same sizes, so a run here and in Keras train on the same images. */
fnn_status fnn_dataset_split(const fnn_dataset *d, double val_fraction, fnn_dataset *train,
                             fnn_dataset *val, fnn_error *err)
{
    if (!d || !train || !val)
        return fnn_fail(err, FNN_ERR_ARG, "fnn_dataset_split: NULL argument");
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return fnn_fail(err, FNN_ERR_ARG, "validation fraction %g: expected a value in [0, 1)",
                        val_fraction);
    int split_at = (int)floor((double)d->n * (1.0 - val_fraction));
    if (split_at <= 0)
        return fnn_fail(err, FNN_ERR_ARG,
                        "validation fraction %g of %d images leaves no training images",
                        val_fraction, d->n);
    if (val_fraction > 0.0 && split_at >= d->n)
        return fnn_fail(err, FNN_ERR_ARG,
                        "validation fraction %g of %d images leaves no validation images",
                        val_fraction, d->n);
    *train = fnn_dataset_view(d, 0, split_at);
    *val = fnn_dataset_view(d, split_at, d->n - split_at);
    return FNN_OK;
}

fnn_status fnn_names_copy(char *const *names, const int *order, int n, char ***out,
                          fnn_error *err)
{
    *out = NULL;
    if (!names)
        return FNN_OK;
    char **copy = calloc(n > 0 ? (size_t)n : 1, sizeof *copy);
    for (int i = 0; copy && i < n; i++)
        if (!(copy[i] = strdup(names[order ? order[i] : i]))) {
            fnn_names_free(copy, i);
            copy = NULL;
        }
    if (!copy)
        return fnn_fail(err, FNN_ERR_NOMEM, "class names: out of memory");
    *out = copy;
    return FNN_OK;
}

void fnn_names_free(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

const char *const *fnn_fashion_class_names(void)
{
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    return names;
}
