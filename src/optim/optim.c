/* Adam (in Keras's form, with epsilon added to the uncorrected root), AdamW (Adam with decoupled
 * weight decay) and SGD with momentum (Keras's form: v = momentum v - lr g; p += v, or with
 * Nesterov p += momentum v - lr g). Each is one vectorised pass over the arena, split between
 * threads; the learning rate and a gradient scale (clipping) come with each step. */
#include "optim/optim.h"
#include "util/error.h"
#include "util/team.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fnn_optim_config fnn_optim_default(fnn_optimizer_kind kind)
{
    if (kind == FNN_OPT_SGD)
        return (fnn_optim_config){.kind = FNN_OPT_SGD, .lr = 0.01f, .momentum = 0.0f};
    /* Keras's defaults; AdamW's weight decay is Keras's 0.004. */
    return (fnn_optim_config){.kind = kind, .lr = 0.001f, .beta1 = 0.9f, .beta2 = 0.999f,
                              .eps = 1e-7f,
                              .weight_decay = kind == FNN_OPT_ADAMW ? 0.004f : 0.0f};
}

static fnn_status check_config(const fnn_optim_config *c, fnn_error *err)
{
    if (!(c->lr > 0.0f) || !isfinite(c->lr))
        return fnn_fail(err, FNN_ERR_ARG, "optimizer: learning rate must be positive, got %g",
                        (double)c->lr);
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return fnn_fail(err, FNN_ERR_ARG, "optimizer: weight decay must be 0 or more, got %g",
                        (double)c->weight_decay);
    if (c->kind == FNN_OPT_ADAM || c->kind == FNN_OPT_ADAMW) {
        if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
            return fnn_fail(err, FNN_ERR_ARG, "optimizer: Adam betas must be in [0, 1)");
        if (!(c->eps > 0.0f))
            return fnn_fail(err, FNN_ERR_ARG, "optimizer: Adam epsilon must be positive");
    } else if (c->kind == FNN_OPT_SGD) {
        if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
            return fnn_fail(err, FNN_ERR_ARG, "optimizer: SGD momentum must be in [0, 1)");
    } else {
        return fnn_fail(err, FNN_ERR_ARG, "optimizer: unknown kind %d", (int)c->kind);
    }
    return FNN_OK;
}

/* Zeroed state on cache-line boundaries, like the parameter arena: the update loop then never
 * splits a vector load across two lines. */
static float *alloc_state(size_t n)
{
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

fnn_status fnn_optimizer_init(fnn_optimizer *o, const fnn_optim_config *cfg, size_t n,
                              fnn_error *err)
{
    memset(o, 0, sizeof *o);
    fnn_status s = check_config(cfg, err);
    if (s != FNN_OK)
        return s;
    o->cfg = *cfg;
    o->n = n;
    o->m = alloc_state(n);
    int adam = cfg->kind != FNN_OPT_SGD;
    if (adam)
        o->v = alloc_state(n);
    o->blocks = malloc(sizeof *o->blocks);
    if (o->blocks) {
        o->blocks[0] = (fnn_param_block){0, n, 1, 1, 1.0f};
        o->nblocks = 1;
    }
    if (!o->m || (adam && !o->v) || !o->blocks) {
        fnn_optimizer_release(o);
        return fnn_fail(err, FNN_ERR_NOMEM, "optimizer: out of memory for %zu parameters", n);
    }
    return FNN_OK;
}

void fnn_optimizer_release(fnn_optimizer *o)
{
    free(o->m);
    free(o->v);
    free(o->blocks);
    free(o->ema);
    o->m = o->v = o->ema = NULL;
    o->blocks = NULL;
    o->nblocks = 0;
}

fnn_status fnn_optimizer_partition(fnn_optimizer *o, const fnn_param_block *blocks, int nblocks,
                                   fnn_error *err)
{
    size_t end = 0;
    if (nblocks < 0)
        return fnn_fail(err, FNN_ERR_ARG, "optimizer: negative block count %d", nblocks);
    for (int i = 0; i < nblocks; i++) {
        const fnn_param_block *b = &blocks[i];
        if (b->offset < end || b->offset > o->n ||
            (b->cols && b->rows > (o->n - b->offset) / b->cols))
            return fnn_fail(err, FNN_ERR_ARG, "optimizer: block %d overlaps or leaves the arena",
                            i);
        if (!(b->lr_scale > 0.0f) || !isfinite(b->lr_scale))
            return fnn_fail(err, FNN_ERR_ARG, "optimizer: block %d's learning-rate scale must be "
                            "positive, got %g", i, (double)b->lr_scale);
        end = b->offset + b->rows * b->cols;
    }
    fnn_param_block *copy = malloc((size_t)(nblocks ? nblocks : 1) * sizeof *copy);
    if (!copy)
        return fnn_fail(err, FNN_ERR_NOMEM, "optimizer: out of memory");
    for (int i = 0; i < nblocks; i++)
        copy[i] = blocks[i];
    free(o->blocks);
    o->blocks = copy;
    o->nblocks = nblocks;
    return FNN_OK;
}

/* l2: weight decay added to the gradient; shrink: the factor AdamW applies first (1 without);
 * gs: the clipping scale of the gradient. Inlined, so gs == 1 costs nothing when clipping is off. */
static inline void adam(fnn_optimizer *o, float *restrict p, const float *restrict g, size_t lo,
                        size_t hi, float alpha, float l2, float shrink, float gs)
{
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    float *restrict m = o->m, *restrict v = o->v;
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        float gi = g[i] * gs + l2 * p[i];
        m[i] += (gi - m[i]) * (1.0f - b1);
        v[i] += (gi * gi - v[i]) * (1.0f - b2);
        p[i] = p[i] * shrink - alpha * m[i] / (sqrtf(v[i]) + eps);
    }
}

static inline void sgd(fnn_optimizer *o, float *restrict p, const float *restrict g, size_t lo,
                       size_t hi, float lr, float l2, float gs)
{
    const float mu = o->cfg.momentum;
    float *restrict vel = o->m;
    if (o->cfg.nesterov) {
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float step = -lr * (g[i] * gs + l2 * p[i]);
            vel[i] = mu * vel[i] + step;
            p[i] += mu * vel[i] + step;
        }
        return;
    }
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        vel[i] = mu * vel[i] - lr * (g[i] * gs + l2 * p[i]);
        p[i] += vel[i];
    }
}

static inline void step_blocks(fnn_optimizer *o, float *params, const float *grads, float lr,
                               float alpha, float gs)
{
    for (int b = 0; b < o->nblocks; b++) {
        const fnn_param_block *blk = &o->blocks[b];
        size_t lo, hi;
        fnn_team_param_rows(blk->rows, &lo, &hi);
        lo = blk->offset + lo * blk->cols;
        hi = blk->offset + hi * blk->cols;
        float wd = blk->decay ? o->cfg.weight_decay : 0.0f;
        /* x * 1.0f is x: a scale of 1 leaves every rate bit for bit as it was. */
        float blr = lr * blk->lr_scale, balpha = alpha * blk->lr_scale;
        if (o->cfg.kind == FNN_OPT_SGD)
            sgd(o, params, grads, lo, hi, blr, wd, gs);
        else if (o->cfg.kind == FNN_OPT_ADAMW)
            adam(o, params, grads, lo, hi, balpha, 0.0f, 1.0f - blr * wd, gs);
        else
            adam(o, params, grads, lo, hi, balpha, wd, 1.0f, gs);
    }
}

void fnn_optimizer_step(fnn_optimizer *o, float *params, const float *grads, int64_t t)
{
    fnn_optimizer_step_lr(o, params, grads, t, o->cfg.lr, 1.0f);
}

void fnn_optimizer_step_lr(fnn_optimizer *o, float *params, const float *grads, int64_t t,
                           float lr, float grad_scale)
{
    /* Keras folds both bias corrections into the step size. */
    float alpha = (float)(lr * sqrt(1.0 - pow(o->cfg.beta2, (double)t)) /
                          (1.0 - pow(o->cfg.beta1, (double)t)));
    if (grad_scale == 1.0f)
        step_blocks(o, params, grads, lr, alpha, 1.0f);
    else
        step_blocks(o, params, grads, lr, alpha, grad_scale);
    if (omp_get_thread_num() == 0)
        o->t = t;
}

double fnn_optimizer_sumsq(const fnn_optimizer *o, const float *grads)
{
    double sum = 0.0;
    for (int b = 0; b < o->nblocks; b++) {
        const fnn_param_block *blk = &o->blocks[b];
        size_t lo, hi;
        fnn_team_param_rows(blk->rows, &lo, &hi);
        lo = blk->offset + lo * blk->cols;
        hi = blk->offset + hi * blk->cols;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (size_t i = lo; i < hi; i++)
            part += grads[i] * grads[i];
        sum += part;
    }
    return sum;
}
