/* Batch normalisation with Keras's semantics: per channel of (c, h, w) inputs (per feature of
 * flat ones) over the batch and the plane in training, with the moving statistics in eval. */
#include "nn/layer.h"
#include "util/error.h"
#include "util/team.h"

#include <math.h>
#include <stdio.h>

/* Threads share channels, fnn_team_param_rows(c): each thread reduces its channels over the
 * whole batch, so no partial sums cross threads, and it updates the same rows of gamma, beta
 * and the moving statistics as the optimizer gives it. Reads and writes are then not by rows
 * of the batch, so `sharing` stays NULL and the model puts barriers around both passes.
 * An evaluation executor folds a batchnorm that follows a conv2d or dense into that layer's
 * output step (fnn_batchnorm_affine; model/exec.c): there this pass runs only where it cannot. */

/* Parameter layout: gamma (c), beta (c), moving_mean (c), moving_variance (c). */
enum { GAMMA, BETA, MOVING_MEAN, MOVING_VAR, NTENSORS };

static const char *const tensor_names[NTENSORS] = {"gamma", "beta", "moving_mean",
                                                   "moving_variance"};

static fnn_status bn_setup(fnn_layer *l, fnn_error *err)
{
    float momentum = l->cfg.bn.momentum, eps = l->cfg.bn.eps;
    if (l->in.c <= 0 || l->in.h <= 0 || l->in.w <= 0)
        return fnn_fail(err, FNN_ERR_ARG, "batchnorm layer %d: empty input %dx%dx%d",
                        l->index, l->in.c, l->in.h, l->in.w);
    if (!(momentum >= 0.0f && momentum < 1.0f)) /* NaN fails too */
        return fnn_fail(err, FNN_ERR_ARG, "batchnorm layer %d: momentum %g is outside [0, 1)",
                        l->index, (double)momentum);
    if (!(eps > 0.0f))
        return fnn_fail(err, FNN_ERR_ARG, "batchnorm layer %d: epsilon %g is not positive",
                        l->index, (double)eps);
    l->out = l->in;
    l->nparams = (size_t)NTENSORS * l->in.c;
    l->ntensors = NTENSORS;
    l->scratch_per_sample = 0;             /* x_hat is recomputed from x in backward */
    l->team_scratch_size = 2 * (size_t)l->in.c; /* batch mean (c), then inv_std (c) */
    return FNN_OK;
}

static void bn_init(fnn_layer *l, fnn_rng *rng)
{
    (void)rng;
    size_t c = (size_t)l->in.c;
    for (size_t j = 0; j < c; j++) {
        l->params[GAMMA * c + j] = 1.0f;
        l->params[BETA * c + j] = 0.0f;
        l->params[MOVING_MEAN * c + j] = 0.0f;
        l->params[MOVING_VAR * c + j] = 1.0f;
    }
}

/* Mean and biased variance of channel ch of x (n, c, hw), summed in double: one thread owns
 * the channel, so the order, and the result, does not depend on the team size. */
static void channel_moments(const float *x, int n, int c, size_t hw, int ch, double *mean,
                            double *var)
{
    double s = 0.0, ss = 0.0, m = (double)n * hw;
    for (int i = 0; i < n; i++) {
        const float *px = x + ((size_t)i * c + ch) * hw;
        for (size_t k = 0; k < hw; k++)
            s += px[k];
    }
    *mean = s / m;
    for (int i = 0; i < n; i++) {
        const float *px = x + ((size_t)i * c + ch) * hw;
        for (size_t k = 0; k < hw; k++) {
            double d = px[k] - *mean;
            ss += d * d;
        }
    }
    *var = ss / m; /* two passes: no cancellation for inputs far from zero */
}

/* y = x scale + shift on channel ch of (n, c, hw). */
static void channel_affine(const float *x, float *y, int n, int c, size_t hw, int ch,
                           float scale, float shift)
{
    for (int i = 0; i < n; i++) {
        size_t off = ((size_t)i * c + ch) * hw;
#pragma omp simd
        for (size_t k = 0; k < hw; k++)
            y[off + k] = x[off + k] * scale + shift;
    }
}

static void bn_forward(fnn_layer *l, const fnn_pass *p, const float *x, float *y, int n)
{
    int c = l->in.c;
    size_t hw = (size_t)l->in.h * l->in.w, lo, hi;
    const float *gamma = l->params + (size_t)GAMMA * c, *beta = l->params + (size_t)BETA * c;
    float *mm = l->params + (size_t)MOVING_MEAN * c; /* (c) */
    float *mv = l->params + (size_t)MOVING_VAR * c;  /* (c) */
    float *mean = l->team_scratch, *inv_std = l->team_scratch + c; /* (c) each */
    float momentum = l->cfg.bn.momentum, eps = l->cfg.bn.eps;
    fnn_team_param_rows((size_t)c, &lo, &hi);
    for (int ch = (int)lo; ch < (int)hi; ch++) {
        if (p->train) {
            double dm, dv;
            channel_moments(x, n, c, hw, ch, &dm, &dv);
            float mu = (float)dm, is = (float)(1.0 / sqrt(dv + eps));
            mean[ch] = mu;
            inv_std[ch] = is;
            mm[ch] = momentum * mm[ch] + (1.0f - momentum) * mu;
            mv[ch] = momentum * mv[ch] + (1.0f - momentum) * (float)dv;
            float scale = gamma[ch] * is;
            channel_affine(x, y, n, c, hw, ch, scale, beta[ch] - mu * scale);
        } else {
            float scale, shift;
            fnn_batchnorm_affine(l, ch, ch + 1, &scale, &shift);
            channel_affine(x, y, n, c, hw, ch, scale, shift);
        }
    }
}

void fnn_batchnorm_affine(const fnn_layer *bn, int ch0, int ch1, float *scale, float *shift)
{
    int c = bn->in.c;
    const float *gamma = bn->params + (size_t)GAMMA * c, *beta = bn->params + (size_t)BETA * c;
    const float *mm = bn->params + (size_t)MOVING_MEAN * c;
    const float *mv = bn->params + (size_t)MOVING_VAR * c;
    for (int ch = ch0; ch < ch1; ch++) {
        float is = 1.0f / sqrtf(mv[ch] + bn->cfg.bn.eps);
        scale[ch - ch0] = gamma[ch] * is;
        shift[ch - ch0] = beta[ch] - mm[ch] * scale[ch - ch0];
    }
}

/* Training mode: the batch statistics depend on x, so with x_hat = (x - mean) inv_std and
 * M = n h w, dx = gamma inv_std / M (M dy - sum(dy) - x_hat sum(dy x_hat)).
 * Eval mode (saliency): the statistics are constants, dx = dy gamma inv_std. */
static void bn_backward(fnn_layer *l, const fnn_pass *p, const float *x, const float *y,
                        float *dy, float *dx, int n)
{
    (void)y;
    int c = l->in.c;
    size_t hw = (size_t)l->in.h * l->in.w, lo, hi;
    double m = (double)n * hw;
    const float *gamma = l->params + (size_t)GAMMA * c;
    const float *mm = l->params + (size_t)MOVING_MEAN * c, *mv = l->params + (size_t)MOVING_VAR * c;
    float *dgamma = l->grads + (size_t)GAMMA * c, *dbeta = l->grads + (size_t)BETA * c;
    fnn_team_param_rows((size_t)c, &lo, &hi);
    for (int ch = (int)lo; ch < (int)hi; ch++) {
        float mu, is;
        if (p->train) {
            mu = l->team_scratch[ch];
            is = l->team_scratch[c + ch];
        } else {
            mu = mm[ch];
            is = 1.0f / sqrtf(mv[ch] + l->cfg.bn.eps);
        }
        double sg = 0.0, sb = 0.0;
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * c + ch) * hw;
            for (size_t k = 0; k < hw; k++) {
                sg += (double)dy[off + k] * ((x[off + k] - mu) * is);
                sb += dy[off + k];
            }
        }
        dgamma[ch] = (float)sg;
        dbeta[ch] = (float)sb;
        l->grads[(size_t)MOVING_MEAN * c + ch] = 0.0f; /* frozen: never read, kept defined */
        l->grads[(size_t)MOVING_VAR * c + ch] = 0.0f;
        if (!dx)
            continue;
        float g = gamma[ch] * is;
        if (p->train) {
            float a = (float)(sb / m), b = (float)(sg / m);
            for (int i = 0; i < n; i++) {
                size_t off = ((size_t)i * c + ch) * hw;
#pragma omp simd
                for (size_t k = 0; k < hw; k++)
                    dx[off + k] = g * (dy[off + k] - a - (x[off + k] - mu) * is * b);
            }
        } else {
            for (int i = 0; i < n; i++) {
                size_t off = ((size_t)i * c + ch) * hw;
#pragma omp simd
                for (size_t k = 0; k < hw; k++)
                    dx[off + k] = g * dy[off + k];
            }
        }
    }
}

static void bn_tensor(const fnn_layer *l, int i, fnn_tensor *t)
{
    int c = l->in.c;
    *t = (fnn_tensor){.rank = 1, .shape = {c}, .size = (size_t)c,
                      .data = l->params + (size_t)i * c,
                      .frozen = i == MOVING_MEAN || i == MOVING_VAR};
    snprintf(t->name, sizeof t->name, "layers.%d.%s", l->index, tensor_names[i]);
}

static void bn_format(const fnn_layer *l, char *buf, size_t size)
{
    if (l->cfg.bn.momentum == 0.99f && l->cfg.bn.eps == 1e-3f)
        snprintf(buf, size, "batchnorm");
    else
        snprintf(buf, size, "batchnorm:%g:%g", (double)l->cfg.bn.momentum,
                 (double)l->cfg.bn.eps);
}

const fnn_layer_ops fnn_batchnorm_ops = {
    .kind = "batchnorm",
    .type = "BatchNormalization",
    .setup = bn_setup,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .tensor = bn_tensor,
    .format = bn_format,
};
