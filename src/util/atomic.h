/* Atomic file replacement: output goes to a temporary file beside the target and is renamed over
 * it only once fully written and synced, so a reader never sees a half-written file. A target
 * that is a symbolic link is resolved (the link stays, its target is replaced); a character
 * device or FIFO is written through (there is nothing to rename); a directory, block device or
 * socket is refused. */
#ifndef FNN_UTIL_ATOMIC_H
#define FNN_UTIL_ATOMIC_H

#include <stddef.h>
#include <sys/stat.h>

#include "fnn.h"
#include "util/error.h"

/* An output file in progress. Every handle ends in exactly one fnn_atomic_commit or
 * fnn_atomic_abort, which frees it. */
typedef struct fnn_atomic_file fnn_atomic_file;

/* Creates "T.tmp.XXXXXX" in the directory of T, path's target (mode 0666 less the umask, like any
 * new file), or opens a device or FIFO at path for writing. */
fnn_status fnn_atomic_open(const char *path, fnn_atomic_file **out, fnn_error *err);

/* Appends size bytes. After a failure the handle can only be aborted (commit refuses). */
fnn_status fnn_atomic_write(fnn_atomic_file *f, const void *data, size_t size, fnn_error *err);

/* Appends formatted text, for CSV and JSON output. */
fnn_status fnn_atomic_printf(fnn_atomic_file *f, fnn_error *err, const char *fmt, ...)
    FNN_PRINTF(3, 4);

/* Flushes, fsyncs, closes and renames the temporary file over path, then fsyncs the directory so
 * the rename itself survives a crash. On failure the temporary file is removed and whatever was
 * at path before is left untouched. Frees f in every case. */
fnn_status fnn_atomic_commit(fnn_atomic_file *f, fnn_error *err);

/* Closes and removes the temporary file; path is untouched. Frees f; NULL is allowed. */
void fnn_atomic_abort(fnn_atomic_file *f);

/* For a process that a signal is ending: removes the temporary of every handle still open, in
 * whatever thread it is being written, and makes every fnn_atomic_open from then on fail
 * (ECANCELED), for the rest of the process; a commit whose temporary was removed fails. Called
 * by fnn's signal thread (cli/signals.c) before the process ends, so that a file being written
 * (a checkpoint, a model) leaves no temporary behind. */
void fnn_atomic_end(void);

/* Writes the whole of data to path through open, write and commit. */
fnn_status fnn_write_atomic(const char *path, const void *data, size_t size, fnn_error *err);

/* Where an output at path really goes: *target is path with its symbolic links resolved
 * (malloc'd) and *st what is there now (st_mode 0 when nothing is). Fails, naming path, for a
 * dangling link, a directory, a block device or a socket. */
fnn_status fnn_atomic_resolve(const char *path, char **target, struct stat *st, fnn_error *err);

/* Creates a new file (or, with directory, a directory) named target + ".tmp.XXXXXX" and returns
 * its malloc'd name; *fd gets the open file when fd is not NULL (else it is closed). NULL with
 * errno set on failure. */
char *fnn_atomic_temp(const char *target, int directory, int *fd);

/* fsyncs the directory that holds path, so that a rename into it survives a crash. */
fnn_status fnn_sync_dir(const char *path, fnn_error *err);

#endif
