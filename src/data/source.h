/* Internal to src/data: the adapters behind fnn_source. Each loads one split whole into an
 * owning data set, since every image has to be decoded before the count (bad images skipped)
 * and the shape (mixed sizes refused) are known, and the data stays in memory as uint8 anyway. */
#ifndef FNN_DATA_SOURCE_H
#define FNN_DATA_SOURCE_H

#include "fnn.h"

/* A growing list of malloc'd paths, for fnn_data_files. */
typedef struct {
    char **v; // (n)
    int n, cap;
} fnn_paths;

/* Appends a copy of path. */
fnn_status fnn_paths_add(fnn_paths *p, const char *path, fnn_error *err);
void fnn_paths_free(fnn_paths *p);

/* "dir/name" into out (cap bytes); FNN_ERR_ARG when it does not fit. */
fnn_status fnn_path_join(char *out, size_t cap, const char *dir, const char *name,
                         fnn_error *err);

/* The split's images into d (owning; channels as stored unless the adapter converts them
 * itself, which the folder one does while decoding), labels and class names. Splits are
 * "train" or "test", checked by the caller. */
fnn_status fnn_idx_source_load(const char *path, const char *split, fnn_dataset *d,
                               fnn_error *err);
fnn_status fnn_folder_source_load(const char *path, const char *split,
                                  const fnn_data_options *opt, fnn_dataset *d, int *skipped,
                                  fnn_error *err);
fnn_status fnn_csv_source_load(const char *path, const char *split, const fnn_data_options *opt,
                               fnn_dataset *d, fnn_error *err);
fnn_status fnn_cifar_source_load(const char *path, const char *split, fnn_dataset *d,
                                 fnn_error *err);

/* The files each adapter reads or could read for the split, appended to p. */
fnn_status fnn_idx_source_files(const char *path, const char *split, fnn_paths *p,
                                fnn_error *err);
fnn_status fnn_folder_source_files(const char *path, const char *split, fnn_paths *p,
                                   fnn_error *err);
fnn_status fnn_csv_source_files(const char *path, const char *split, fnn_paths *p,
                                fnn_error *err);
fnn_status fnn_cifar_source_files(const char *path, const char *split, fnn_paths *p,
                                  fnn_error *err);

/* Whether a directory holds IDX files (any split), and CIFAR-10's first batch. */
int fnn_idx_dir_detect(const char *dir);
int fnn_cifar_dir_detect(const char *dir);

/* The name of a split's sibling file: base with its last "train" replaced by test (the Kaggle
 * CSV's and the IDX files' convention); FNN_ERR_IO naming path when base has no "train". */
fnn_status fnn_test_sibling(const char *path, const char *test, char *out, size_t cap,
                            fnn_error *err);

#endif
