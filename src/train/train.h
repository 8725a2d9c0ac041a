/* The training loop's insides, shared with benchmarks. */
#ifndef FNN_TRAIN_TRAIN_H
#define FNN_TRAIN_TRAIN_H

#include "optim/optim.h"

/* Shares each of m's trainable tensors between threads by its first dimension in the
 * optimizer, as the layers' backward passes share their gradients; frozen ones are left out. */
fnn_status fnn_partition_optimizer(fnn_optimizer *o, const fnn_model *m, fnn_error *err);

/* ReduceLROnPlateau after an epoch whose validation loss is val_loss (Keras's, min_delta 1e-4):
 * a loss below *best - 1e-4 becomes *best and clears *wait; otherwise after s->patience such
 * epochs *scale (the factor on base_lr) is cut by s->factor, to no less than
 * s->min_lr / base_lr. *best starts at +inf, *wait at 0 and *scale at 1. */
void fnn_plateau_step(const fnn_lr_schedule *s, float base_lr, double val_loss, float *scale,
                      double *best, int *wait);

#endif
