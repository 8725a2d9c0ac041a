/* Batch normalisation with Keras's semantics: per channel of (c, h, w) inputs (per feature of
 * flat ones) over the batch and the plane in training, with the moving statistics in eval. */
#include "nn/layer.h"
#include "util/error.h"
#include "util/team.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* Keeps the compiler from fusing a product into the sum that follows it (an FMA rounds once
 * where the sums below are defined to round twice), whatever -ffp-contract says. Without FMA
 * instructions there is nothing to fuse. */
#if defined(__GNUC__) && defined(__FMA__) && (defined(__x86_64__) || defined(__i386__))
#define UNFUSED(v) __asm__("" : "+x"(v))
#elif defined(__GNUC__) && defined(__aarch64__)
#define UNFUSED(v) __asm__("" : "+w"(v))
#else
#define UNFUSED(v) ((void)0)
#endif

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
            double d = px[k] - *mean, d2 = d * d;
            UNFUSED(d2);
            ss += d2;
        }
    }
    *var = ss / m; /* two passes: no cancellation for inputs far from zero */
}

/* The sums of a training backward pass over channel ch: sum(dy x_hat) and sum(dy), with
 * x_hat = (x - mu) is in float. */
static void channel_grad_sums(const float *x, const float *dy, int n, int c, size_t hw, int ch,
                              float mu, float is, double *sg, double *sb)
{
    double g = 0.0, b = 0.0;
    for (int i = 0; i < n; i++) {
        size_t off = ((size_t)i * c + ch) * hw;
        for (size_t k = 0; k < hw; k++) {
            double prod = (double)dy[off + k] * ((x[off + k] - mu) * is);
            UNFUSED(prod);
            g += prod;
            b += dy[off + k];
        }
    }
    *sg = g;
    *sb = b;
}

/* Channels reduced together, each in a lane of its own: every lane adds its channel's terms in
 * channel_moments' and channel_grad_sums' order, so the sums are theirs bit for bit, but the
 * lanes' chains of additions overlap instead of waiting on one another (one channel's chain
 * is bound by the latency of an addition: about 4 cycles an element). */
#define BLOCK 8
#if ((defined(__GNUC__) && __GNUC__ + 0 >= 12) || defined(__clang__)) && defined(__AVX__)
#define BLOCKED 1
typedef float f4 __attribute__((vector_size(16)));
typedef double d4 __attribute__((vector_size(32)));

/* Elements k..k+3 of the four channels' planes p, p + hw, p + 2 hw, p + 3 hw, transposed and
 * as doubles: e[j] holds element k + j of the four channels, one per lane. With map, each
 * channel's v becomes (v - sub) mul in float first (x_hat). */
static inline void rows4(const float *p, size_t hw, size_t k, f4 sub, f4 mul, int map, d4 e[4])
{
    f4 r[4];
    for (int j = 0; j < 4; j++)
        memcpy(&r[j], p + (size_t)j * hw + k, sizeof r[j]);
    f4 t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);
    f4 t1 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);
    f4 t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);
    f4 t3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
    f4 col[4] = {__builtin_shufflevector(t0, t2, 0, 1, 4, 5),
                 __builtin_shufflevector(t0, t2, 2, 3, 6, 7),
                 __builtin_shufflevector(t1, t3, 0, 1, 4, 5),
                 __builtin_shufflevector(t1, t3, 2, 3, 6, 7)};
    for (int j = 0; j < 4; j++)
        e[j] = __builtin_convertvector(map ? (col[j] - sub) * mul : col[j], d4);
}

/* Element k of the four channels, as doubles (the planes' last hw % 4 elements). */
static inline d4 column4(const float *p, size_t hw, size_t k, f4 sub, f4 mul, int map)
{
    f4 v = {p[k], p[hw + k], p[2 * hw + k], p[3 * hw + k]};
    if (map)
        v = (v - sub) * mul;
    return __builtin_convertvector(v, d4);
}

/* Adds to s[h] (channels 4h..4h+3) each term of e[h], mapped by the pass: pass 0 sums the
 * elements, pass 1 the squares of their differences from mu[h]. */
static inline void add_moments(d4 s[2], const d4 e[2], const d4 mu[2], int pass)
{
    for (int h = 0; h < 2; h++) {
        if (pass == 0) {
            s[h] += e[h];
        } else {
            d4 d = e[h] - mu[h], d2 = d * d;
            UNFUSED(d2);
            s[h] += d2;
        }
    }
}

/* channel_moments of channels ch..ch+7. */
static void block_moments(const float *x, int n, int c, size_t hw, int ch, double *mean,
                          double *var)
{
    const f4 none = {0};
    const double total = (double)n * hw;
    size_t k4 = hw & ~(size_t)3;
    d4 s[2] = {{0}, {0}}, mu[2] = {{0}, {0}};
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            const float *p = x + ((size_t)i * c + ch) * hw, *q = p + 4 * hw;
            size_t k = 0;
            for (; k < k4; k += 4) {
                d4 e[2][4];
                rows4(p, hw, k, none, none, 0, e[0]);
                rows4(q, hw, k, none, none, 0, e[1]);
                for (int j = 0; j < 4; j++)
                    add_moments(s, (const d4[2]){e[0][j], e[1][j]}, mu, pass);
            }
            for (; k < hw; k++)
                add_moments(s,
                            (const d4[2]){column4(p, hw, k, none, none, 0),
                                          column4(q, hw, k, none, none, 0)},
                            mu, pass);
        }
        for (int h = 0; h < 2; h++) {
            d4 r = s[h] / total;
            for (int j = 0; j < 4; j++)
                (pass == 0 ? mean : var)[4 * h + j] = r[j];
            mu[h] = r;
            s[h] = (d4){0};
        }
    }
}

/* Adds to g[h] and b[h] (channels 4h..4h+3) the terms dy x_hat and dy. */
static inline void add_grad_sums(d4 g[2], d4 b[2], const d4 dy[2], const d4 xh[2])
{
    for (int h = 0; h < 2; h++) {
        d4 prod = dy[h] * xh[h];
        UNFUSED(prod);
        g[h] += prod;
        b[h] += dy[h];
    }
}

/* channel_grad_sums of channels ch..ch+7, with their mu[] and is[]. */
static void block_grad_sums(const float *x, const float *dy, int n, int c, size_t hw, int ch,
                            const float *mu, const float *is, double *sg, double *sb)
{
    const f4 none = {0};
    const f4 sub[2] = {{mu[0], mu[1], mu[2], mu[3]}, {mu[4], mu[5], mu[6], mu[7]}};
    const f4 mul[2] = {{is[0], is[1], is[2], is[3]}, {is[4], is[5], is[6], is[7]}};
    size_t k4 = hw & ~(size_t)3;
    d4 g[2] = {{0}, {0}}, b[2] = {{0}, {0}};
    for (int i = 0; i < n; i++) {
        size_t off = ((size_t)i * c + ch) * hw;
        const float *px[2] = {x + off, x + off + 4 * hw}, *pd[2] = {dy + off, dy + off + 4 * hw};
        size_t k = 0;
        for (; k < k4; k += 4) {
            d4 xh[2][4], d[2][4];
            for (int h = 0; h < 2; h++) {
                rows4(px[h], hw, k, sub[h], mul[h], 1, xh[h]);
                rows4(pd[h], hw, k, none, none, 0, d[h]);
            }
            for (int j = 0; j < 4; j++)
                add_grad_sums(g, b, (const d4[2]){d[0][j], d[1][j]},
                              (const d4[2]){xh[0][j], xh[1][j]});
        }
        for (; k < hw; k++) {
            d4 xh[2], d[2];
            for (int h = 0; h < 2; h++) {
                xh[h] = column4(px[h], hw, k, sub[h], mul[h], 1);
                d[h] = column4(pd[h], hw, k, none, none, 0);
            }
            add_grad_sums(g, b, d, xh);
        }
    }
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++) {
            sg[4 * h + j] = g[h][j];
            sb[4 * h + j] = b[h][j];
        }
}
#endif

void fnn_batchnorm_moments(const float *x, int n, int c, size_t hw, int ch, int count,
                           double *mean, double *var)
{
#ifdef BLOCKED
    if (count == BLOCK) {
        block_moments(x, n, c, hw, ch, mean, var);
        return;
    }
#endif
    for (int j = 0; j < count; j++)
        channel_moments(x, n, c, hw, ch + j, mean + j, var + j);
}

void fnn_batchnorm_grad_sums(const float *x, const float *dy, int n, int c, size_t hw, int ch,
                             int count, const float *mu, const float *is, double *sg,
                             double *sb)
{
#ifdef BLOCKED
    if (count == BLOCK) {
        block_grad_sums(x, dy, n, c, hw, ch, mu, is, sg, sb);
        return;
    }
#endif
    for (int j = 0; j < count; j++)
        channel_grad_sums(x, dy, n, c, hw, ch + j, mu[j], is[j], sg + j, sb + j);
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
    for (int ch0 = (int)lo; ch0 < (int)hi; ch0 += BLOCK) {
        int count = (int)hi - ch0 < BLOCK ? (int)hi - ch0 : BLOCK;
        double dm[BLOCK], dv[BLOCK];
        if (p->train)
            fnn_batchnorm_moments(x, n, c, hw, ch0, count, dm, dv);
        for (int ch = ch0; ch < ch0 + count; ch++) {
            if (p->train) {
                float mu = (float)dm[ch - ch0], is = (float)(1.0 / sqrt(dv[ch - ch0] + eps));
                mean[ch] = mu;
                inv_std[ch] = is;
                mm[ch] = momentum * mm[ch] + (1.0f - momentum) * mu;
                mv[ch] = momentum * mv[ch] + (1.0f - momentum) * (float)dv[ch - ch0];
                float scale = gamma[ch] * is;
                channel_affine(x, y, n, c, hw, ch, scale, beta[ch] - mu * scale);
            } else {
                float scale, shift;
                fnn_batchnorm_affine(l, ch, ch + 1, &scale, &shift);
                channel_affine(x, y, n, c, hw, ch, scale, shift);
            }
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
    for (int ch0 = (int)lo; ch0 < (int)hi; ch0 += BLOCK) {
        int count = (int)hi - ch0 < BLOCK ? (int)hi - ch0 : BLOCK;
        float mus[BLOCK], iss[BLOCK];
        double sgs[BLOCK], sbs[BLOCK];
        for (int ch = ch0; ch < ch0 + count; ch++) {
            if (p->train) {
                mus[ch - ch0] = l->team_scratch[ch];
                iss[ch - ch0] = l->team_scratch[c + ch];
            } else {
                mus[ch - ch0] = mm[ch];
                iss[ch - ch0] = 1.0f / sqrtf(mv[ch] + l->cfg.bn.eps);
            }
        }
        fnn_batchnorm_grad_sums(x, dy, n, c, hw, ch0, count, mus, iss, sgs, sbs);
        for (int ch = ch0; ch < ch0 + count; ch++) {
            float is = iss[ch - ch0];
            double sg = sgs[ch - ch0], sb = sbs[ch - ch0];
            dgamma[ch] = (float)sg;
            dbeta[ch] = (float)sb;
            l->grads[(size_t)MOVING_MEAN * c + ch] = 0.0f; /* frozen: never read, kept defined */
            l->grads[(size_t)MOVING_VAR * c + ch] = 0.0f;
            if (!dx)
                continue;
            float g = gamma[ch] * is, mu = mus[ch - ch0];
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
