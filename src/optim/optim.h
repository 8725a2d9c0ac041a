/* Optimizers update a flat parameter arena from a gradient arena of the same layout. Nothing
 * here knows about layers, so the gradients can be summed across processes before a step. */
#ifndef FNN_OPTIM_OPTIM_H
#define FNN_OPTIM_OPTIM_H

#include "fnn.h"

/* rows x cols parameters at offset: one tensor. A step gives each thread its
 * fnn_team_param_rows(rows) share, the rows whose gradients the same thread wrote in the
 * backward pass, so that they are still in its cache. */
typedef struct {
    size_t offset, rows, cols;
    int decay; /* 1: weight decay applies (kernels) */
    /* > 0: the block's learning rate is the step's times this; the model sets it per group
     * (e.g. batch norm's parameters and biases), the optimizer knows no layers. */
    float lr_scale;
} fnn_param_block;

typedef struct {
    fnn_optim_config cfg;
    size_t n;      /* parameters */
    float *m;      /* (n) Adam first moment; SGD velocity */
    float *v;      /* (n) Adam second moment; NULL for SGD */
    int64_t t;     /* steps taken */
    int nblocks;
    fnn_param_block *blocks; /* (nblocks) in order, without overlaps, within [0, n); gaps are
                                left alone. One block of n rows, decayed, by default */
    /* The weights' moving average (optim/ema.h), optimizer state as Keras 3's use_ema is:
     * checkpoints keep it with the moments. */
    float *ema;      /* (n) the whole arena averaged, gaps included; NULL when off */
    float ema_decay; /* per step, in (0, 1) */
    int ema_every;   /* steps between updates, >= 1 */
} fnn_optimizer;

fnn_status fnn_optimizer_init(fnn_optimizer *o, const fnn_optim_config *cfg, size_t n,
                              fnn_error *err);
void fnn_optimizer_release(fnn_optimizer *o);

/* Replaces the partition of the arena into blocks (copied); each block's lr_scale must be
 * positive. */
fnn_status fnn_optimizer_partition(fnn_optimizer *o, const fnn_param_block *blocks, int nblocks,
                                   fnn_error *err);

/* Team function: update number t (from 1) of params (n) from grads (n). Each thread updates its
 * rows of each block, reading only the gradients of those rows, and needs no barrier before;
 * the caller places one before params are read again. Thread 0 records t in o->t. */
void fnn_optimizer_step(fnn_optimizer *o, float *params, const float *grads, int64_t t);

/* fnn_optimizer_step at learning rate lr (from a schedule) on the gradients times grad_scale
 * (gradient clipping; 1 leaves them as they are). */
void fnn_optimizer_step_lr(fnn_optimizer *o, float *params, const float *grads, int64_t t,
                           float lr, float grad_scale);

/* Team function: the sum of squares of this thread's share of the gradients (the rows it
 * updates), for clipping by global norm: add up every thread's after a barrier. */
double fnn_optimizer_sumsq(const fnn_optimizer *o, const float *grads);

#endif
