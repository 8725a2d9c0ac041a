/* An executor: the memory one pass of a model needs (each layer's outputs and their gradients,
 * per-thread scratch, the normalised input), sized for a batch and a team, apart from the
 * weights. Any number of executors can run one model at once; each is used by one team. */
#ifndef FNN_MODEL_EXEC_H
#define FNN_MODEL_EXEC_H

#include "nn/layer.h"

struct fnn_exec {
    const fnn_model *m;
    int capacity;        /* rows the buffers hold */
    int team;            /* threads the per-thread scratch is sized for */
    int backward;        /* 1: has the gradient buffers a backward pass needs */
    /* (nlayers) copies of the model's layers: the same weights (params, and grads when
     * backward), with output and scratch pointing into this executor's buffers. */
    fnn_layer *layers;
    /* (nlayers + 1) as the model's src, for these layers: an evaluation executor folds each
     * batchnorm (and a ReLU after it) that follows a conv2d or dense into it, and makes them
     * aliases (exec.c), so it has fewer buffers than the model has layers. */
    int *src;
    float **act;         /* (nlayers) act[i]: output of layer i, (capacity, out_i); NULL for aliases */
    float **dact;        /* (nlayers) gradient with respect to act[i], same shapes; NULL without
                            backward */
    float *norm_x;       /* (capacity, input) the normalised batch; NULL when not normalized */
    float *buffers;      /* backs all of the above */
};
typedef struct fnn_exec fnn_exec;

/* *out = an executor for passes of up to `rows` rows by teams of up to `team` threads over m. With
 * grads (m's arena layout, arena_size floats; m->grads for training) it can run backward too,
 * which writes the parameter gradients there; NULL: evaluation passes (p->train 0) only,
 * with each batchnorm that follows a conv2d or dense (and a ReLU after it) folded into that
 * layer's output step. m's input normalisation is read now: an executor made before it
 * changes must be made again. */
fnn_status fnn_exec_create(const fnn_model *m, int rows, int team, float *grads, fnn_exec **out,
                           fnn_error *err);
void fnn_exec_free(fnn_exec *e);

/* Team function: runs x (n <= capacity, input) through the model; returns the logits
 * (n, nclasses), complete after a barrier unless p->rows_after lets it end without one. */
const float *fnn_exec_forward(fnn_exec *e, const fnn_pass *p, const float *x, int n);

/* The buffer (capacity, nclasses) into which the loss writes its gradient before backward. */
float *fnn_exec_logit_grad(fnn_exec *e);

/* Team function: back-propagates the logit gradient through the forward pass just run on x,
 * writing every parameter gradient into the executor's grads, and the input gradient (n, input)
 * into dx when not NULL. With p->rows_after it ends without a barrier: each thread then holds
 * only the gradients of its optimizer share (each tensor's fnn_team_param_rows). */
void fnn_exec_backward(fnn_exec *e, const fnn_pass *p, const float *x, int n, float *dx);

#endif
