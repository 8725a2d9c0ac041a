/* Optimizers update a flat parameter arena from a gradient arena of the same layout. Nothing
 * here knows about layers, so the gradients can be summed across processes before a step. */
#ifndef FNN_OPTIM_OPTIM_H
#define FNN_OPTIM_OPTIM_H

#include "fnn.h"

typedef struct {
    fnn_optim_config cfg;
    size_t n;      /* parameters */
    float *m;      /* (n) Adam first moment; SGD velocity */
    float *v;      /* (n) Adam second moment; NULL for SGD */
    int64_t t;     /* steps taken */
} fnn_optimizer;

fnn_status fnn_optimizer_init(fnn_optimizer *o, const fnn_optim_config *cfg, size_t n,
                              fnn_error *err);
void fnn_optimizer_release(fnn_optimizer *o);

/* Team function: one update of params (n) from grads (n). */
void fnn_optimizer_step(fnn_optimizer *o, float *params, const float *grads);

#endif
