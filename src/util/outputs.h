/* A run's outputs, registered with its inputs before the run, so that no output can replace an
 * input or another output (compared by what the paths resolve to, not by spelling), and put in
 * place together, or not at all, once the run has succeeded. */
#ifndef FNN_UTIL_OUTPUTS_H
#define FNN_UTIL_OUTPUTS_H

#include "fnn.h"
#include "util/error.h"

typedef struct fnn_outputs fnn_outputs;

/* NULL when out of memory. */
fnn_outputs *fnn_outputs_new(void);

/* Removes every staged temporary that was not committed, then frees s; NULL is allowed. */
void fnn_outputs_free(fnn_outputs *s);

/* A file the run reads; what names it in messages ("--data", "the model"). A path that does not
 * exist is not recorded: its reader will say so. */
fnn_status fnn_outputs_input(fnn_outputs *s, const char *what, const char *path, fnn_error *err);

/* How an output is written. */
typedef enum {
    FNN_OUT_STAGED, /* written to a temporary beside it during the run, put in place by commit */
    FNN_OUT_LIVE    /* replaced by its writer during the run (a checkpoint, a search's folder) */
} fnn_output_kind;

/* Registers the output file at path, named what in messages ("--out"). Refuses, naming both
 * options and paths, an output that is the same file as an input or another output (FNN_ERR_ARG),
 * and one that is a directory, block device, socket or link to nothing, or whose directory is
 * missing or not writable (FNN_ERR_IO). A character device or FIFO is written through, never
 * replaced. */
fnn_status fnn_outputs_file(fnn_outputs *s, const char *what, const char *path,
                            fnn_output_kind kind, fnn_error *err);

/* Registers a directory of outputs, recognised as fnn's by the file marker in it: an existing
 * directory without it is refused (FNN_ERR_IO), as fnn never writes into a directory it did not
 * create. A live one is created now (with the marker) if missing. A staged one is written as a
 * temporary directory that commit swaps into place; entries of the old directory that the new
 * one does not hold move into it. */
fnn_status fnn_outputs_dir(fnn_outputs *s, const char *what, const char *path, const char *marker,
                           fnn_output_kind kind, fnn_error *err);

/* Creates the staged outputs' temporaries (beside their targets), once the run is about to write
 * them, so that a run killed before then leaves nothing behind. */
fnn_status fnn_outputs_stage(fnn_outputs *s, fnn_error *err);

/* Where the run writes the output registered as path: its temporary once staged, otherwise path
 * itself (a live output, or a device written through). NULL for a path not registered. Valid
 * until fnn_outputs_free. */
const char *fnn_outputs_path(const fnn_outputs *s, const char *path);

/* Whether paths a and b name the same file (or the same file still to be created). */
int fnn_same_file(const char *a, const char *b);

/* Whether path is (or would be created as) an output written through rather than replaced: a
 * character device or FIFO. */
int fnn_outputs_through(const fnn_outputs *s, const char *path);

/* Puts every staged output in place. When one fails, those already moved are put back where the
 * filesystem can swap names (renameat2 RENAME_EXCHANGE, which Linux's local filesystems have), so
 * that the previous files stay; the temporaries are removed either way. */
fnn_status fnn_outputs_commit(fnn_outputs *s, fnn_error *err);

/* Removes the staged temporaries now, without freeing anything, and marks s discarded: staging
 * and commit fail from then on. Safe from another thread than the run's (fnn's signal thread):
 * staging, commit and discard take turns. */
void fnn_outputs_discard(fnn_outputs *s);

#endif
