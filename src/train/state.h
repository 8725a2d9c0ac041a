/* Where a training run stands between two steps: the loop's own state, which checkpoints
 * (io/checkpoint.h) save and restore. Nothing here knows about files. */
#ifndef FNN_TRAIN_STATE_H
#define FNN_TRAIN_STATE_H

#include "util/rng.h"

#include <stdint.h>

typedef struct {
    int epoch;             /* epochs completed */
    int step;              /* steps done into epoch + 1 (an interrupted epoch), else 0 */
    int64_t t;             /* optimizer steps taken */
    fnn_rng shuffle;       /* the shuffle generator as it was before epoch + 1's shuffle */
    double loss_sum;       /* epoch + 1's running sums over its first `step` steps */
    long correct, seen;
    float plateau_scale;   /* the plateau schedule's cuts so far (1: none) */
    double plateau_best;   /* best validation loss seen, +inf before any */
    int plateau_wait;
    double es_best;        /* early stopping: best monitored value, NaN before any */
    int es_epoch;          /* its epoch, 0 before any */
    int es_wait;
} fnn_train_state;

#endif
