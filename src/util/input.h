/* Opening input files: every file fnn reads (models, checkpoints, IDX, images, histories, grids)
 * comes through here, so a FIFO, a device or a directory is refused before anything blocks. */
#ifndef FNN_UTIL_INPUT_H
#define FNN_UTIL_INPUT_H

#include "fnn.h"

#include <stdio.h>
#include <sys/stat.h>

/* *fd: a blocking-mode descriptor open for reading on the regular file at path. On failure err
 * says "PATH: not a regular file" or "PATH: cannot open: ..." and errno holds the open's error
 * (ENOENT for a missing file), or 0 for a file that is not regular. st (may be NULL) receives
 * the file's status. */
fnn_status fnn_input_fd(const char *path, int *fd, struct stat *st, fnn_error *err);

/* The same as a stdio stream ("rb"). */
fnn_status fnn_input_open(const char *path, FILE **f, struct stat *st, fnn_error *err);

#endif
