/* The sequential model's insides, shared by training, evaluation and model files. */
#ifndef FNN_MODEL_MODEL_H
#define FNN_MODEL_MODEL_H

#include "nn/layer.h"

/* Rows per forward pass in evaluation and prediction. */
#define FNN_EVAL_BATCH 256

struct fnn_model {
    char *spec;          /* canonical architecture spec */
    fnn_shape input;     /* per-sample input shape */
    int nlayers;
    fnn_layer *layers;   /* (nlayers) the weights' views; buffers are NULL here: each executor
                            (model/exec.h) holds copies pointing at its own */
    int nclasses;
    size_t nparams;      /* parameters, without the alignment padding */
    size_t arena_size;   /* floats in params and grads: each layer's block starts 64-byte aligned */
    float *params;       /* (arena_size) every layer's parameters */
    float *grads;        /* (arena_size) same layout as params */
    int *src;            /* (nlayers + 1) layer whose output feeds layer i (the model output at
                            nlayers); -1 for the model input */
    int *params_below;   /* (nlayers) 1 if a layer before i has parameters */
    /* Per-channel input normalisation (fnn_model_set_normalization): the first layer sees
     * (x - norm_mean[ch]) / norm_std[ch]. Off (normalized 0) the input goes in untouched. */
    int normalized;
    float *norm_mean;    /* (input.c) */
    float *norm_std;     /* (input.c) */
};

/* Parses a spec (or a preset name such as "mlp") into layers with ops, cfg and index set. */
fnn_status fnn_spec_parse(const char *spec, fnn_layer **layers, int *nlayers, fnn_error *err);

/* Team function: this thread's rows (fnn_team_range(n, 1)) of out (n, input) = the
 * per-channel normalisation of x (n, input). */
void fnn_model_normalize_rows(const fnn_model *m, const float *x, int n, float *out);

/* Team function: this thread's rows of dx (n, input), the gradient with respect to the
 * normalised input, become the gradient with respect to x: divided by the channel's std. */
void fnn_model_normalize_grad_rows(const fnn_model *m, float *dx, int n);

/* FNN_ERR_NUMERIC, naming the first image, if any of probs (n, k) is NaN or infinite: a model
 * whose weights overflow must not report a number. Every path from a model's outputs to a
 * printed number (evaluation, prediction, robustness, occlusion, saliency) goes through this
 * check or the two below, which split it for threads that each check their own rows. */
fnn_status fnn_check_probs(const float *probs, int n, size_t k, const char *what, fnn_error *err);
/* The first row of v (n, k) holding a NaN or an infinity, or -1. */
int fnn_nonfinite_row(const float *v, int n, size_t k);
/* fnn_check_probs's failure for image i. */
fnn_status fnn_nonfinite_fail(fnn_error *err, const char *what, int i);

#endif
