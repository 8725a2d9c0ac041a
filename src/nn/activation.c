/* A standalone element-wise activation layer (Keras's ReLU, LeakyReLU, ELU, Activation):
 * relu, leaky ReLU, ELU, tanh and sigmoid. No parameters; threads share the batch by rows,
 * as dropout does. The backward pass reads the derivative off the output y alone. */
#include "nn/layer.h"
#include "util/error.h"
#include "util/team.h"

#include <math.h>
#include <stdio.h>

static fnn_status activation_setup(fnn_layer *l, fnn_error *err)
{
    fnn_activation kind = l->cfg.act.kind;
    float alpha = l->cfg.act.alpha;
    switch (kind) {
    case FNN_ACT_RELU:
    case FNN_ACT_TANH:
    case FNN_ACT_SIGMOID:
        break;
    case FNN_ACT_LEAKY_RELU:
    case FNN_ACT_ELU:
        /* The backward pass tells x > 0 from y > 0, which holds only for alpha >= 0. */
        if (!(alpha >= 0.0f) || isinf(alpha))
            return fnn_fail(err, FNN_ERR_ARG,
                            "activation layer %d: %s alpha %g must be finite and at least 0",
                            l->index, kind == FNN_ACT_ELU ? "elu" : "leakyrelu", (double)alpha);
        break;
    case FNN_ACT_LINEAR:
        return fnn_fail(err, FNN_ERR_ARG,
                        "activation layer %d: a linear activation layer does nothing", l->index);
    case FNN_ACT_SOFTMAX:
        return fnn_fail(err, FNN_ERR_ARG,
                        "activation layer %d: softmax is fused with the loss and belongs on the "
                        "last dense layer",
                        l->index);
    default:
        return fnn_fail(err, FNN_ERR_ARG, "activation layer %d: unknown activation %d",
                        l->index, (int)kind);
    }
    if (l->in.c < 1 || l->in.h < 1 || l->in.w < 1)
        return fnn_fail(err, FNN_ERR_ARG, "activation layer %d: empty %dx%dx%d input", l->index,
                        l->in.c, l->in.h, l->in.w);
    l->out = l->in;
    l->nparams = 0;
    l->ntensors = 0;
    l->scratch_per_sample = 0;
    return FNN_OK;
}

static void activation_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    size_t lo, hi;
    fnn_layer_forward_elements(l, n, &lo, &hi);
    float alpha = l->cfg.act.alpha;
    switch (l->cfg.act.kind) {
    case FNN_ACT_RELU:
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case FNN_ACT_LEAKY_RELU:
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
        break;
    case FNN_ACT_ELU:
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            y[i] = x[i] > 0.0f ? x[i] : alpha * (expf(x[i]) - 1.0f);
        break;
    case FNN_ACT_TANH:
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            y[i] = tanhf(x[i]);
        break;
    case FNN_ACT_SIGMOID:
        /* expf(-x) overflows to inf for x < -88, giving the right limit 0. */
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    default: /* setup admits no other kind */
        break;
    }
}

/* dx = dy f'(x), with f' written in terms of y = f(x). At x = 0 this gives relu 0, leaky ReLU
 * alpha and ELU alpha, as TensorFlow's gradients do. */
static void activation_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                                float *dy, float *dx, int n)
{
    if (!dx)
        return;
    size_t lo, hi;
    fnn_layer_row_elements(l, n, &lo, &hi);
    float alpha = l->cfg.act.alpha;
    switch (l->cfg.act.kind) {
    case FNN_ACT_RELU:
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case FNN_ACT_LEAKY_RELU:
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : alpha * dy[i];
        break;
    case FNN_ACT_ELU:
        /* For x <= 0, d/dx alpha (e^x - 1) = alpha e^x = y + alpha. */
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : (y[i] + alpha) * dy[i];
        break;
    case FNN_ACT_TANH:
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    case FNN_ACT_SIGMOID:
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
    default:
        break;
    }
}

static unsigned activation_sharing(const fnn_layer *l, int n, int nt)
{
    unsigned fwd = fnn_layer_splits_elements(l, n, nt) ? 0 : FNN_FWD_ROWS_IN | FNN_FWD_ROWS_OUT;
    return fwd | FNN_BWD_ROWS_IN | FNN_BWD_ROWS_OUT;
}

/* The spec tokens the parser reads back: relu, leakyrelu:ALPHA, elu:ALPHA, tanh, sigmoid. */
static void activation_format(const fnn_layer *l, char *buf, size_t size)
{
    double alpha = l->cfg.act.alpha;
    switch (l->cfg.act.kind) {
    case FNN_ACT_RELU:
        snprintf(buf, size, "relu");
        break;
    case FNN_ACT_LEAKY_RELU:
        snprintf(buf, size, "leakyrelu:%g", alpha);
        break;
    case FNN_ACT_ELU:
        snprintf(buf, size, "elu:%g", alpha);
        break;
    case FNN_ACT_TANH:
        snprintf(buf, size, "tanh");
        break;
    case FNN_ACT_SIGMOID:
        snprintf(buf, size, "sigmoid");
        break;
    default:
        snprintf(buf, size, "activation?%d", (int)l->cfg.act.kind);
        break;
    }
}

const fnn_layer_ops fnn_activation_ops = {
    .kind = "activation",
    .type = "Activation",
    .setup = activation_setup,
    .forward = activation_forward,
    .backward = activation_backward,
    .format = activation_format,
    .sharing = activation_sharing,
};
