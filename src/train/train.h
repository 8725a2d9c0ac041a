/* The training loop's insides, shared with benchmarks. */
#ifndef FNN_TRAIN_TRAIN_H
#define FNN_TRAIN_TRAIN_H

#include "optim/optim.h"

/* Shares each of m's trainable tensors between threads by its first dimension in the
 * optimizer, as the layers' backward passes share their gradients; frozen ones are left out. */
fnn_status fnn_partition_optimizer(fnn_optimizer *o, const fnn_model *m, fnn_error *err);

#endif
