/* The CIFAR-10 data source: the binary batches, records of one label byte and 3072 pixel bytes
 * (3 x 32 x 32 planes: red, then green, then blue), and batches.meta.txt for the class names. */
#define _POSIX_C_SOURCE 200809L

#include "data/source.h"
#include "util/error.h"
#include "util/input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CIFAR_SIDE 32
#define CIFAR_IMAGE (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_IMAGE)
#define CIFAR_TRAIN_BATCHES 5
#define CIFAR_PATH_CAP 4096
/* More names than this in batches.meta.txt is not CIFAR's file (CIFAR-100's has 100). */
#define CIFAR_NAME_CAP 256

/* The folder holding the batches: dir, or its cifar-10-batches-bin/ (as the archive unpacks). */
static int batches_dir(const char *dir, char *out)
{
    char probe[CIFAR_PATH_CAP];
    struct stat sb;
    snprintf(out, CIFAR_PATH_CAP, "%s", dir);
    if (fnn_path_join(probe, sizeof probe, dir, "data_batch_1.bin", NULL) == FNN_OK &&
        stat(probe, &sb) == 0)
        return 1;
    if (fnn_path_join(out, CIFAR_PATH_CAP, dir, "cifar-10-batches-bin", NULL) == FNN_OK &&
        fnn_path_join(probe, sizeof probe, out, "data_batch_1.bin", NULL) == FNN_OK &&
        stat(probe, &sb) == 0)
        return 1;
    snprintf(out, CIFAR_PATH_CAP, "%s", dir);
    return 0;
}

int fnn_cifar_dir_detect(const char *dir)
{
    char b[CIFAR_PATH_CAP];
    return batches_dir(dir, b);
}

/* The batch files of the split, in order. */
static fnn_status batch_paths(const char *dir, const char *split, char paths[][CIFAR_PATH_CAP],
                              int *n, fnn_error *err)
{
    char root[CIFAR_PATH_CAP];
    batches_dir(dir, root);
    *n = strcmp(split, "train") == 0 ? CIFAR_TRAIN_BATCHES : 1;
    for (int i = 0; i < *n; i++) {
        char name[32];
        if (*n == 1)
            snprintf(name, sizeof name, "test_batch.bin");
        else
            snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
        fnn_status st = fnn_path_join(paths[i], CIFAR_PATH_CAP, root, name, err);
        if (st != FNN_OK)
            return st;
    }
    return FNN_OK;
}

/* The class names of batches.meta.txt beside the batches, one a line, blank lines ignored;
 * none when the file is absent. */
static fnn_status read_names(const char *root, char ***names, int *count, fnn_error *err)
{
    char path[CIFAR_PATH_CAP];
    *names = NULL;
    *count = 0;
    fnn_status st = fnn_path_join(path, sizeof path, root, "batches.meta.txt", err);
    if (st != FNN_OK || access(path, F_OK) != 0)
        return st;
    FILE *f;
    if ((st = fnn_input_open(path, &f, NULL, err)) != FNN_OK)
        return st;
    char **v = calloc(CIFAR_NAME_CAP, sizeof *v);
    char line[256];
    int n = 0, lineno = 0;
    if (!v)
        st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", path);
    while (st == FNN_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        if (line[len] == 0 && !feof(f)) {
            st = fnn_fail(err, FNN_ERR_FORMAT, "%s: line %d is longer than %zu bytes", path,
                          lineno, sizeof line - 2);
            break;
        }
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
            len--;
        line[len] = 0;
        if (len == 0)
            continue;
        if (n == CIFAR_NAME_CAP)
            st = fnn_fail(err, FNN_ERR_FORMAT, "%s: more than %d class names", path,
                          CIFAR_NAME_CAP);
        else if (!(v[n++] = strdup(line)))
            st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", path);
    }
    if (st == FNN_OK && ferror(f))
        st = fnn_fail(err, FNN_ERR_IO, "%s: read error", path);
    fclose(f);
    if (st != FNN_OK) {
        for (int i = 0; v && i < n; i++)
            free(v[i]);
        free(v);
        return st;
    }
    *names = v;
    *count = n;
    return FNN_OK;
}

/* Appends the records of one batch file to d (images and labels sized for cap images). */
static fnn_status read_batch(const char *path, fnn_dataset *d, size_t *cap, fnn_error *err)
{
    FILE *f;
    struct stat sb;
    fnn_status st = fnn_input_open(path, &f, &sb, err);
    if (st != FNN_OK)
        return errno == ENOENT ? fnn_fail(err, FNN_ERR_IO, "%s: no such file (CIFAR-10's "
                                          "binary version has data_batch_1.bin to "
                                          "data_batch_5.bin and test_batch.bin)", path)
                               : st;
    size_t size = (size_t)sb.st_size, records = size / CIFAR_RECORD;
    if (size == 0 || size % CIFAR_RECORD != 0)
        st = fnn_fail(err, FNN_ERR_FORMAT,
                      "%s: %zu bytes, not a whole number of %d-byte records (a label byte and "
                      "3x32x32 pixels)",
                      path, size, CIFAR_RECORD);
    size_t need = (size_t)d->n + records;
    if (st == FNN_OK && need > (size_t)INT32_MAX / 2)
        st = fnn_fail(err, FNN_ERR_FORMAT, "%s: more images than fnn takes", path);
    if (st == FNN_OK && need > *cap) {
        uint8_t *im = realloc(d->images, need * CIFAR_IMAGE);
        if (im)
            d->images = im;
        uint8_t *lb = im ? realloc(d->labels, need) : NULL;
        if (lb)
            d->labels = lb;
        if (!im || !lb)
            st = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for %zu images", path, need);
        else
            *cap = need;
    }
    uint8_t rec[CIFAR_RECORD];
    for (size_t i = 0; st == FNN_OK && i < records; i++) {
        if (fread(rec, 1, CIFAR_RECORD, f) != CIFAR_RECORD) {
            st = fnn_fail(err, ferror(f) ? FNN_ERR_IO : FNN_ERR_FORMAT,
                          "%s: %s at record %zu (offset %zu)", path,
                          ferror(f) ? "read error" : "ends early", i, i * CIFAR_RECORD);
            break;
        }
        d->labels[d->n] = rec[0];
        memcpy(d->images + (size_t)d->n * CIFAR_IMAGE, rec + 1, CIFAR_IMAGE);
        d->n++;
    }
    fclose(f);
    return st;
}

fnn_status fnn_cifar_source_load(const char *path, const char *split, fnn_dataset *d,
                                 fnn_error *err)
{
    char files[CIFAR_TRAIN_BATCHES][CIFAR_PATH_CAP], root[CIFAR_PATH_CAP];
    int nfiles, nnames = 0;
    char **names = NULL;
    batches_dir(path, root);
    fnn_status st = batch_paths(path, split, files, &nfiles, err);
    size_t cap = 0;
    d->c = 3;
    d->h = d->w = CIFAR_SIDE;
    d->owns = 1;
    for (int i = 0; st == FNN_OK && i < nfiles; i++)
        st = read_batch(files[i], d, &cap, err);
    if (st == FNN_OK)
        st = read_names(root, &names, &nnames, err);
    int maxlabel = -1;
    for (int i = 0; st == FNN_OK && i < d->n; i++)
        maxlabel = d->labels[i] > maxlabel ? d->labels[i] : maxlabel;
    if (st == FNN_OK && names && nnames <= maxlabel)
        st = fnn_fail(err, FNN_ERR_FORMAT,
                      "%s/batches.meta.txt names %d classes, but the labels go up to %d", root,
                      nnames, maxlabel);
    if (st != FNN_OK) {
        for (int i = 0; i < nnames; i++)
            free(names[i]);
        free(names);
        free(d->images);
        free(d->labels);
        memset(d, 0, sizeof *d);
        return st;
    }
    d->nclasses = names ? nnames : maxlabel + 1;
    d->class_names = names;
    snprintf(d->labels_path, sizeof d->labels_path, "%.*s", (int)sizeof d->labels_path - 1, files[0]);
    return FNN_OK;
}

fnn_status fnn_cifar_source_files(const char *path, const char *split, fnn_paths *p,
                                  fnn_error *err)
{
    char files[CIFAR_TRAIN_BATCHES + 1][CIFAR_PATH_CAP], root[CIFAR_PATH_CAP];
    int n;
    batches_dir(path, root);
    fnn_status st = batch_paths(path, split, files, &n, err);
    if (st == FNN_OK)
        st = fnn_path_join(files[n++], CIFAR_PATH_CAP, root, "batches.meta.txt", err);
    for (int i = 0; st == FNN_OK && i < n; i++)
        if (access(files[i], F_OK) == 0)
            st = fnn_paths_add(p, files[i], err);
    return st;
}
